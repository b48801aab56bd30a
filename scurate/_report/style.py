"""The one look of scurate's pages (report.html, and bench.html later): matplotlib settings,
colours, figures as inline SVG, table cells coloured by value, and the page's CSS. Nothing
here reaches the network: text stays text in the SVG (the browser's sans-serif), and dense
point clouds are embedded as PNG data inside the SVG."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; set before pyplot is imported anywhere

import matplotlib.pyplot as plt
from cycler import cycler
from matplotlib.colors import LinearSegmentedColormap, to_hex

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
GREY = "#9a9a9a"
SELECTED, NOT_SELECTED = "#1f77b4", "#c7c7c7"
MISSING = "#d62728"  # a stratum of the pool that the selection misses
RC = {
    "svg.fonttype": "none",  # text as <text>, drawn with the page's font: small and sharp
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titlelocation": "left",
    "axes.prop_cycle": cycler(color=PALETTE),
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 100,
}
HEAT = LinearSegmentedColormap.from_list("scurate", ["#f7fbff", "#6baed6", "#08306b"])


def _rc(name: str) -> Any:
    """The shared settings, with ``name`` salting the SVG's ids."""
    return {**RC, "svg.hashsalt": f"scurate-{name}"}


def color(i: int) -> str:
    """The ``i``-th categorical colour (datasets, policies)."""
    return PALETTE[i % len(PALETTE)]


@contextmanager
def figure(name: str, width: float = 5.0, height: float = 3.2, **kw: Any) -> Iterator[Any]:
    """``with figure("coverage-tissue") as (fig, ax)``: a figure in the shared style; ``name``
    salts the SVG's ids so that figures on one page never share an id."""
    with plt.rc_context(_rc(name)):
        fig, ax = plt.subplots(figsize=(width, height), **kw)
        try:
            yield fig, ax
        finally:
            plt.close(fig)


def svg(fig: Any, name: str) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog, no metadata), tagged with
    ``data-figure=name`` so that a page's figures can be found."""
    buf = io.StringIO()
    with plt.rc_context(_rc(name)):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    return text.replace("<svg ", f'<svg data-figure="{escape(name)}" role="img" ', 1)


def heat_cell(value: float | None, lo: float = 0.0, hi: float = 1.0, digits: int = 2) -> str:
    """A table cell coloured by ``value`` on [lo, hi] (white to dark blue), its text readable
    on the colour; ``None`` is an empty grey cell."""
    if value is None:
        return '<td class="na">–</td>'
    t = 0.0 if hi <= lo else min(max((value - lo) / (hi - lo), 0.0), 1.0)
    ink = "#fff" if t > 0.55 else "#111"
    return (
        f'<td class="num" style="background:{to_hex(HEAT(t))};color:{ink}">{value:.{digits}f}</td>'
    )


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#fafafa;line-height:1.4}
main{max-width:1100px;margin:0 auto;padding:1.5em 2em 4em;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:2em}h3{margin-bottom:.3em}
nav a{margin-right:1em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #e3e3e3;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.na{color:#999;text-align:center}
.note{color:#555;font-size:.9em}.missing{color:#d62728;font-weight:600}
figure{display:inline-block;vertical-align:top;margin:.5em 1.5em 1.5em 0;max-width:100%}
figure svg{max-width:100%;height:auto}
figcaption{color:#555;font-size:.9em;max-width:500px}
.why{background:#fff7e6;border-left:3px solid #f0ad4e;padding:.4em .8em}
"""

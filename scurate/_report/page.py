"""report.html: one self-contained page (inline SVG and CSS, no script, no network) built from
a finished output folder's manifest.parquet and report.json."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import polars as pl
from numpy.typing import NDArray

from scurate._report import figures
from scurate._report.adds import FIELDS, adds_table
from scurate._report.style import CSS, heat_cell
from scurate.errors import InputError

PAGE = "report.html"
# the manifest columns the page reads itself; adds_table reads more (where report.json has no
# "adds" table already)
PAGE_COLUMNS = ("dataset_id", "reason", "selected", "novelty", "density")
STRATA = ("tissue", "cell_type", "assay", "donor_id")  # drawn first; roll-ups after
REASONS = ("selected", "exact_copy", "near_copy", "qc", "quota_full", "past_budget")


def _num(value: Any) -> str:
    if value is None:
        return '<td class="na">not recorded</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:,.4g}</td>'
    return f'<td class="num">{value:,}</td>' if isinstance(value, int) else _td(value)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``rows`` hold ready ``<td>`` cells."""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _td(text: Any) -> str:
    return f"<td>{escape(str(text))}</td>"


def _figure(svg: str | None, caption: str, why: str) -> str:
    """The figure with its caption, or the reason it is absent (and no caption)."""
    if svg is None:
        return f'<p class="why">{escape(why)}</p>'
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _section(key: str, title: str, *body: str) -> str:
    return f'<section id="{key}"><h2>{escape(title)}</h2>{"".join(body)}</section>'


def _run(report: Mapping[str, Any], manifest: pl.DataFrame) -> str:
    p = report.get("parameters", {})
    emb = report.get("embedding") or {}
    sources = p.get("sources")
    listed = [str(s) for s in (sources if isinstance(sources, list) else [sources])]
    parents = {str(Path(s).parent) for s in listed}
    if len(listed) > 1 and len(parents) == 1:  # one folder: named once
        listed = [
            f"{len(listed)} files in {parents.pop()}:",
            ", ".join(Path(s).name for s in listed),
        ]
    n_sel = report.get("n_selected")
    rows = [
        ("sources", "<br>".join(escape(str(s)) for s in listed)),
        ("cells in the pool", f"{manifest.height:,}"),
        ("cells selected", "none (a score run)" if n_sel is None else f"{n_sel:,}"),
        ("budget", escape(str(p.get("budget", "–")))),
        ("policy", escape(str(p.get("policy", "–")))),
        ("reference", escape(", ".join(map(str, p.get("reference") or [])) or "none")),
        ("embedding", escape(_describe(emb, ("kind", "obsm_key", "n_dims", "fit_cells")))),
        ("genes", escape(_genes(emb))),
        ("covering radius", escape(str(report.get("covering_radius", "–")))),
    ]
    table = "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    table += "</table>"
    svg = figures.timings(report)
    return _section(
        "run",
        "The run",
        table,
        _details("every parameter", p),
        _figure(svg, "Seconds each stage took.", "This run recorded no timings."),
    )


def _describe(info: Mapping[str, Any], keys: Sequence[str]) -> str:
    found = [f"{k}: {info[k]}" for k in keys if info.get(k) is not None]
    return ", ".join(found) or "not recorded"


def _genes(emb: Mapping[str, Any]) -> str:
    """How the sources' genes met, as the embedding recorded it."""
    if emb.get("n_genes_shared") is None:
        return "not recorded (a stored embedding: no genes read)"
    text = f"{emb['n_genes_shared']:,} genes in every source, met on {emb.get('gene_id_kind')}"
    if emb.get("n_highly_variable") is not None:
        text += f"; {emb['n_highly_variable']:,} highly variable used"
    found = emb.get("genes_found_in") or {}
    if found:
        text += "; names read from " + ", ".join(f"{k}: {v}" for k, v in found.items())
    return text


def _details(summary: str, data: Any) -> str:
    text = escape(json.dumps(data, indent=1, default=str))
    return f"<details><summary>{escape(summary)}</summary><pre>{text}</pre></details>"


def _datasets(
    report: Mapping[str, Any], adds: Sequence[Mapping[str, Any]], manifest: pl.DataFrame
) -> str:
    reasons = "reason" in manifest.columns
    head = ["dataset", "pool", "exact copies", "near copies", "QC filtered", "selected", "% sel"]
    rows = []
    for r in adds:
        frac = r["selected"] / r["pool"] if r["pool"] else 0.0
        rows.append(
            [
                _td(r["dataset_id"]),
                *(_num(r[k]) for k in ("pool", "exact_copies", "near_copies", "qc_filtered")),
                _num(r["selected"]),
                heat_cell(100 * frac, 0, 100, 1),
            ]
        )
    kept = (report.get("duplicates") or {}).get("kept_in_pool")
    note = (
        ""
        if reasons
        else (
            '<p class="note">QC filtered: not recorded (this manifest has no <code>reason</code>'
            " column).</p>"
        )
    ) + ('<p class="note">Copies were kept in the pool (--keep-duplicates).</p>' if kept else "")
    svg = figures.datasets(adds)
    return _section(
        "datasets",
        "Per dataset",
        _table(head, rows),
        note,
        _reasons(manifest),
        _figure(
            svg,
            "Each dataset's pool: what was selected and what was set aside.",
            "No dataset in this manifest.",
        ),
    )


def _reasons(manifest: pl.DataFrame) -> str:
    if "reason" not in manifest.columns:
        return ""
    counts = manifest.group_by("dataset_id", "reason", maintain_order=True).len()
    wide = counts.pivot("reason", index="dataset_id", values="len").fill_null(0)
    codes = [c for c in REASONS if c in wide.columns]
    rows = [
        [_td(r[0]), *(_num(int(v)) for v in r[1:])]
        for r in wide.select("dataset_id", *codes).iter_rows()
    ]
    return "<h3>Why each cell is in or out</h3>" + _table(["dataset", *codes], rows)


def _adds(adds: Sequence[Mapping[str, Any]]) -> str:
    basis = next((r["far_basis"] for r in adds if r["far_basis"]), None)
    far_head = {
        "novelty": "far from the reference",
        "nearest_other_dataset": "far from other datasets",
    }.get(basis or "", "far from everything else")
    head = [
        "dataset",
        *(f"{f.replace('_', ' ')} only here" for f in FIELDS),
        "copies of",
        far_head,
        "coverage gain",
        "adds",
    ]
    rows = []
    for r in adds:
        only = [
            _td(
                ", ".join(f"{v['value']} ({v['cells']}, {v['selected']} sel.)" for v in found)
                or "–"
            )
            for found in r["only_here"].values()
        ]
        copies = ", ".join(
            f"{o}: {n['exact']} exact, {n['near']} near" for o, n in r["copies_of"].items()
        )
        gain = r["coverage_gain"]
        rows.append(
            [
                _td(r["dataset_id"]),
                *only,
                _td(copies or "–"),
                heat_cell(r["far_share"], 0, 1),
                heat_cell(None if gain is None else 100 * gain["relative"], 0, 25, 1),
                _td(r["adds"]),
            ]
        )
    why = {
        "novelty": "cells farther from the reference than the pool's median cell (novelty)",
        "nearest_other_dataset": (
            "cells farther from every other dataset than the pool's median cell "
            "(distance to the nearest cell of another dataset, on the embedding)"
        ),
    }.get(basis or "", "not available: no reference and no embedding")
    note = (
        f'<p class="note">Far: share of {why}. Coverage gain: how much farther (in %) the pool '
        "would be on average from the selection without this dataset's selected cells "
        "(needs the embedding). Copies add nothing.</p>"
    )
    return _section("adds", "What each dataset adds", _table(head, rows), note)


def _coverage(report: Mapping[str, Any]) -> str:
    tables = report.get("coverage") or {}
    if not tables:
        why = (
            "No coverage was counted: a score run selects nothing."
            if report.get("n_selected") is None
            else "No canonical field has values in this pool, so there is no stratum to count."
        )
        return _section("coverage", "Coverage per stratum", f'<p class="why">{escape(why)}</p>')
    order = [s for s in STRATA if s in tables] + [s for s in tables if s not in STRATA]
    rows, parts = [], []
    for spec in order:
        t = tables[spec]
        share = t["n_strata_selected"] / t["n_strata_pool"] if t["n_strata_pool"] else None
        rows.append(
            [
                _td(spec),
                _num(t["n_strata_pool"]),
                _num(t["n_strata_selected"]),
                heat_cell(share, 0, 1),
                _num(t["n_missing_from_selection"]),
            ]
        )
        if spec not in STRATA:
            continue
        missing = ", ".join(f"{m['value']} ({m['pool']})" for m in t["missing_from_selection"])
        parts.append(
            _figure(
                figures.coverage(spec, t),
                f"{spec}: share of the pool (grey) and of the selection (blue) per stratum; "
                "strata the selection misses are in red.",
                f"{spec}: no values in this pool.",
            )
            + (
                f'<p class="missing">missing from the selection: {escape(missing)}</p>'
                if missing
                else ""
            )
        )
    summary = _table(["stratum", "in the pool", "in the selection", "share kept", "missing"], rows)
    return _section("coverage", "Coverage per stratum", summary, *parts)


def _radius(report: Mapping[str, Any]) -> str:
    why = (
        "A score run selects nothing, so there is no covering-radius curve."
        if report.get("n_selected") is None
        else "The policy kept no curve per pick (k-center keeps its covering radius, facility "
        "its objective); the radius at the budget is in the run's table."
    )
    over = report.get("covering_radius_curve_over", "the pool")
    return _section(
        "radius",
        "The policy's curve over the ranks",
        _figure(
            figures.radius_curve(report),
            f"After each pick: the covering radius (largest distance to the nearest selected "
            f"cell, over {over}; lower is better) or the facility objective as a share of its "
            "maximum (higher is better). Any prefix of the ranking is itself a selection.",
            why,
        ),
    )


def _overlap(report: Mapping[str, Any], names: Sequence[str]) -> str:
    return _section(
        "overlap",
        "Overlap between datasets",
        _figure(
            figures.overlap(report, names),
            "Share of each row's cells with an exact (left) or near (right) copy in the "
            "column's dataset.",
            "One dataset only: there is no overlap to draw."
            if len(names) < 2
            else "This report.json holds no overlap.",
        ),
    )


def _scores(manifest: pl.DataFrame) -> str:
    return _section(
        "scores",
        "Novelty and density",
        _figure(
            figures.histogram(manifest, "novelty", "distance to the nearest reference cell"),
            "Novelty (distance to the nearest reference cell), selected vs not.",
            "Novelty: not recorded (the run had no --reference).",
        ),
        _figure(
            figures.histogram(manifest, "density", "density relative to the pool's median"),
            "Neighbourhood density relative to the pool's median (1 = typical), selected vs not.",
            "Density: not recorded in this manifest.",
        ),
    )


def _map(manifest: pl.DataFrame, embedding: NDArray[Any] | None, why: str) -> str:
    if embedding is None:
        return _section("map", "Pool and selection in 2-D", f'<p class="why">{escape(why)}</p>')
    svg, points = figures.map_2d(manifest, embedding)
    return _section(
        "map",
        "Pool and selection in 2-D",
        _figure(
            svg,
            "The first two principal components of the embedding: "
            + (
                f"all {points:,} cells."
                if points == manifest.height
                else f"a seeded sample of {points:,} of the {manifest.height:,} cells."
            ),
            "",
        ),
    )


def render(
    manifest: pl.DataFrame,
    report: Mapping[str, Any],
    embedding: NDArray[Any] | None,
    *,
    where: Path,
    why: str = "",
) -> str:
    """The HTML of report.html for a run's ``manifest`` and ``report`` (report.json's record),
    written in the folder ``where``. ``embedding``: an (n, d) array in manifest order for the
    2-D map and the embedding-based columns of the "adds" table (unless ``report`` holds the
    table under ``adds``); ``why`` says why there is none."""
    if embedding is not None and embedding.shape[0] != manifest.height:
        msg = f"embedding: {embedding.shape[0]} rows for a manifest of {manifest.height} cells"
        raise InputError(msg)
    path = where
    stored = report.get("adds")  # where the run put the table into report.json already
    adds = stored if isinstance(stored, list) and stored else adds_table(manifest, embedding)
    names = [r["dataset_id"] for r in adds]
    kind = "selection" if report.get("n_selected") is not None else "scores"
    title = f"scurate {kind} report: {manifest.height:,} cells"
    nav = "".join(
        f'<a href="#{k}">{t}</a>'
        for k, t in (
            ("run", "run"),
            ("datasets", "datasets"),
            ("adds", "adds"),
            ("coverage", "coverage"),
            ("radius", "radius"),
            ("overlap", "overlap"),
            ("scores", "novelty & density"),
            ("map", "map"),
        )
    )
    body = "".join(
        [
            _run(report, manifest),
            _datasets(report, adds, manifest),
            _adds(adds),
            _coverage(report),
            _radius(report),
            _overlap(report, names),
            _scores(manifest),
            _map(manifest, embedding, why),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{escape(title)}</h1><p class="note">{escape(str(path.resolve()))}</p>'
        f"<nav>{nav}</nav>{body}</main></body></html>\n"
    )

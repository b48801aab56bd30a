"""The figures of report.html, each from a run's report.json and manifest: an inline SVG, or
None where the run holds no data for it (the page then says why, with no caption)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._data.spill import take
from scurate._report.style import GREY, MISSING, NOT_SELECTED, SELECTED, color, figure, svg

MOST_STRATA = 30  # bars per coverage chart: the largest strata of the pool, missing ones kept
MAP_POINTS = 20_000  # points of the 2-D map
BINS = 40


def timings(report: Mapping[str, Any]) -> str | None:
    """Seconds per stage, as horizontal bars."""
    stages = {k: float(v) for k, v in (report.get("timings_s") or {}).items() if v is not None}
    if not stages:
        return None
    names = list(stages)
    with figure("timings", 5.0, 0.3 * len(names) + 0.8) as (fig, ax):
        ax.barh(names, [stages[n] for n in names], color=GREY)
        ax.invert_yaxis()
        ax.set_xlabel("seconds")
        ax.set_title("time per stage")
        return svg(fig, "timings")


def datasets(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Per dataset, its pool split into selected, copies set aside, QC filtered and the rest."""
    if not rows:
        return None
    names = [r["dataset_id"] for r in rows]
    parts = {
        "selected": [r["selected"] for r in rows],
        "exact copies": [r["exact_copies"] for r in rows],
        "near copies": [r["near_copies"] for r in rows],
        "QC filtered": [r["qc_filtered"] or 0 for r in rows],
    }
    rest = [max(r["pool"] - sum(p[i] for p in parts.values()), 0) for i, r in enumerate(rows)]
    colors = (SELECTED, "#d62728", "#ff9896", "#ffbb78")
    with figure("datasets", 6.4, 0.35 * len(names) + 1.0) as (fig, ax):
        left = np.zeros(len(names))
        for (label, values), c in zip(parts.items(), colors, strict=True):
            if any(values):
                ax.barh(names, values, left=left, color=c, label=label)
                left += values
        ax.barh(names, rest, left=left, color=NOT_SELECTED, label="not selected")
        ax.invert_yaxis()
        ax.set_xlabel("cells")
        ax.set_title("each dataset's pool")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25 - 0.5 / len(names)), ncol=5)
        return svg(fig, "datasets")


def coverage(spec: str, table: Mapping[str, Any]) -> str | None:
    """Share of the pool and of the selection per stratum; strata the selection misses in
    red. At most ``MOST_STRATA`` bars: the largest, with every missing one among them."""
    rows = [r for r in table.get("strata", []) if r["value"] is not None]
    if not rows:
        return None
    pool_n = sum(r["pool"] for r in rows) or 1
    sel_n = sum(r["selected"] for r in rows) or 1
    shown = rows[:MOST_STRATA]
    name = f"coverage-{spec.replace('@', '-')}"
    with figure(name, 5.0, 0.22 * len(shown) + 1.0) as (fig, ax):
        y = np.arange(len(shown))
        ax.barh(y - 0.2, [r["pool"] / pool_n for r in shown], 0.4, color=GREY, label="pool")
        ax.barh(
            y + 0.2, [r["selected"] / sel_n for r in shown], 0.4, color=SELECTED, label="selection"
        )
        ax.set_yticks(y, [_short(str(r["value"])) for r in shown])
        for tick, r in zip(ax.get_yticklabels(), shown, strict=True):
            if r["selected"] == 0:
                tick.set_color(MISSING)
                tick.set_fontweight("bold")
        ax.invert_yaxis()
        ax.set_xlabel("share of cells")
        more = f" (largest {len(shown)} of {len(rows)})" if len(rows) > len(shown) else ""
        ax.set_title(f"{spec}{more}")
        ax.legend(loc="lower right")
        return svg(fig, name)


def _short(text: str, most: int = 38) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def radius_curve(report: Mapping[str, Any]) -> str | None:
    """The policy's curve over the ranks, on a log x axis: the covering radius after each pick
    where the policy kept it (k-center), else the facility objective after each pick as a share
    of its maximum (``policy_info.objective_curve``); None where there is neither."""
    curve = report.get("covering_radius_curve") or []
    info = report.get("policy_info") or {}
    objective = info.get("objective_curve") or []
    if len(curve) >= 2:
        x = [p["n_selected"] for p in curve]
        y = [p["radius"] for p in curve]
        ylabel, title = "covering radius", "covering radius over the ranks"
    elif len(objective) >= 2 and info.get("objective_max"):
        # at most ~200 points, log-spaced like the radius curve
        at = np.unique(np.geomspace(1, len(objective), 200).astype(np.int64))
        x = at.tolist()
        y = (np.asarray(objective, dtype=np.float64)[at - 1] / info["objective_max"]).tolist()
        ylabel, title = "objective / maximum", "facility objective over the ranks"
    else:
        return None
    with figure("radius", 5.0, 3.0) as (fig, ax):
        ax.plot(x, y, marker="o", ms=3, color=SELECTED)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.margins(x=0.03)
        ax.set_xlabel("cells selected (rank + 1)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        return svg(fig, "radius")


def overlap(report: Mapping[str, Any], names: Sequence[str]) -> str | None:
    """Dataset x dataset: the share of the row's cells with an exact (left) or near (right)
    copy in the column's dataset."""
    entries = report.get("overlap")
    if entries is None or len(names) < 2:
        return None
    at = {n: i for i, n in enumerate(names)}
    grids = {k: np.zeros((len(names), len(names))) for k in ("exact", "near")}
    for e in entries:
        if e["dataset"] in at and e["in_dataset"] in at:
            for k, grid in grids.items():
                grid[at[e["dataset"]], at[e["in_dataset"]]] = e[k] / max(e["n_cells"], 1)
    side = 0.45 * len(names) + 1.6
    with figure("overlap", 2 * side + 1.0, side, ncols=2) as (fig, axes):
        top = max(float(max(g.max() for g in grids.values())), 0.01)
        for ax, (kind, grid) in zip(axes, grids.items(), strict=True):
            image = ax.imshow(grid, cmap="Blues", vmin=0, vmax=top)
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
            ax.set_yticks(range(len(names)), names)
            ax.set_title(f"{kind} copies")
            ax.set_xlabel("copy found in")
            if len(names) <= 12:
                for (i, j), v in np.ndenumerate(grid):
                    if i != j and v > 0:
                        ink = "white" if v > top / 2 else "black"
                        text = f"{100 * v:.0f}%" if v >= 0.1 else f"{100 * v:.1f}%"
                        ax.text(j, i, text, ha="center", va="center", color=ink)
        axes[0].set_ylabel("cells of")
        fig.colorbar(image, ax=list(axes), label="share of the row's cells", shrink=0.8)
        return svg(fig, "overlap")


def histogram(manifest: pl.DataFrame, column: str, label: str) -> str | None:
    """``column``'s distribution, selected vs not (density-normalised, shared bins)."""
    values = manifest[column].cast(pl.Float64).to_numpy()
    finite = np.isfinite(values)
    if not finite.any():
        return None
    selected = manifest["selected"].fill_null(False).to_numpy()
    lo, hi = np.quantile(values[finite], [0.0, 0.995])
    bins = np.linspace(lo, hi if hi > lo else lo + 1, BINS + 1)
    name = f"hist-{column}"
    with figure(name, 5.0, 2.8) as (fig, ax):
        rest = "not selected" if selected.any() else "pool (nothing selected)"
        groups = [(rest, ~selected, NOT_SELECTED), ("selected", selected, SELECTED)]
        for text, mask, c in groups:
            v = np.clip(values[finite & mask], bins[0], bins[-1])
            if len(v):
                ax.hist(v, bins=bins, density=True, color=c, alpha=0.75, label=text)
        ax.set_xlabel(label)
        ax.set_ylabel("density of cells")
        ax.set_title(f"{column}: selected vs not")
        ax.legend()
        return svg(fig, name)


def pca_2d(embedding: NDArray[np.floating[Any]], rows: NDArray[np.int64]) -> NDArray[np.float64]:
    """The first two principal components of ``embedding[rows]`` (SVD, centred)."""
    x = take(embedding, rows).astype(np.float64)  # by blocks where the embedding is mapped
    x -= x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    projected: NDArray[np.float64] = x @ vt[:2].T
    return projected


def map_2d(
    manifest: pl.DataFrame, embedding: NDArray[np.floating[Any]], seed: int = 0
) -> tuple[str, int]:
    """PCA of a seeded sample of at most ``MAP_POINTS`` cells, coloured by dataset (left) and
    by selected (right); points drawn as one embedded image per panel. Returns (svg, points)."""
    n = manifest.height
    rng = np.random.default_rng(seed)
    rows = np.arange(n) if n <= MAP_POINTS else np.sort(rng.choice(n, MAP_POINTS, replace=False))
    xy = pca_2d(embedding, rows)
    datasets = manifest["dataset_id"].gather(rows).to_numpy().astype(str)
    selected = manifest["selected"].fill_null(False).gather(rows).to_numpy()
    size = 4 if len(rows) > 5000 else 9
    with figure("map", 11.0, 4.6, ncols=2, sharex=True, sharey=True) as (fig, (left, right)):
        for i, d in enumerate(dict.fromkeys(datasets.tolist())):
            m = datasets == d
            left.scatter(*xy[m].T, s=size, color=color(i), lw=0, label=d, rasterized=True)
        right.scatter(
            *xy[~selected].T,
            s=size,
            color=NOT_SELECTED,
            lw=0,
            label="not selected",
            rasterized=True,
        )
        right.scatter(
            *xy[selected].T, s=size, color=SELECTED, lw=0, label="selected", rasterized=True
        )
        left.set_title("by dataset")
        right.set_title("pool vs selection")
        for ax in (left, right):
            ax.set_xlabel("PC1")
            ax.legend(markerscale=2, loc="best", fontsize=8)
        left.set_ylabel("PC2")
        return svg(fig, "map"), len(rows)

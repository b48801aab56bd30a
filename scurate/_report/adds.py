"""What each dataset adds to the pool: the per-dataset table of report.html, JSON-able for
report.json and ``--json``.

For each dataset, in source order:

- ``pool``, ``selected``; ``exact_copies`` (cells with ``exact_dup_of``) and ``near_copies``
  (cells of a near-duplicate group other than the one the group keeps), from the ``reason``
  column where the manifest has it, else recomputed from the score columns; ``qc_filtered``
  (``reason == "qc"``) is null where the manifest records no QC;
- ``copies_of``: per other dataset, how many of this dataset's cells are exact or near copies
  of its cells; copies add nothing, whatever dataset they sit in;
- ``only_here``: per field (cell_type, tissue, assay), the values found in this dataset and in
  no other, with their cells and how many were selected;
- ``far_share``: the share of its cells farther from everything else than the pool's median
  cell is. "Everything else" is the reference where the run had one (basis ``novelty``: the
  manifest's distance to the nearest reference cell); else every other dataset (basis
  ``nearest_other_dataset``: the distance to the nearest cell of another dataset, computed on
  the embedding when one is given, for a seeded sample of at most ``FAR_QUERIES`` cells per
  dataset, against a seeded sample of at most ``FAR_BASE`` cells of the pool); null when
  neither exists;
- ``coverage_gain``: how much farther the pool would be from the selection without this
  dataset's selected cells: the mean distance of a seeded sample of at most ``GAIN_QUERIES``
  pool cells to their nearest selected cell, without them minus with them, absolute and
  relative (needs the embedding and a selection; else null);
- ``adds``: one sentence that says it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._compute.faiss_index import knn, nearest_distance
from scurate._compute.scoring import keep_mask
from scurate._data.manifest import codes
from scurate._data.spill import take

FIELDS = ("cell_type", "tissue", "assay")
FAR_QUERIES, FAR_BASE, GAIN_QUERIES = 2_000, 100_000, 5_000
K_OUTSIDE = 16  # neighbours searched at once for the nearest cell outside a dataset
SEED = 0


def _copies(manifest: pl.DataFrame) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per cell, the pool row it copies (-1 for none), exactly and nearly: as ``reason`` says
    where the manifest has it (with ``--keep-duplicates`` a copy is not set aside), except that
    a cell set aside by QC, which ``reason`` names first, is a copy where the scores say so."""
    n = manifest.height
    # the copies' rows by a join, not a dict of every cell id (gigabytes at ten million cells)
    copies = manifest.select(pl.int_range(n, dtype=pl.Int64).alias("row"), "exact_dup_of")
    copies = copies.drop_nulls("exact_dup_of")
    # the right side holds only the cells some copy names: selecting every cell id for the
    # join took a gigabyte at ten million cells, most runs having few copies or none
    originals = (
        manifest.lazy()
        .select(
            pl.col("cell_id").alias("exact_dup_of"), pl.int_range(n, dtype=pl.Int64).alias("of")
        )
        .filter(pl.col("exact_dup_of").is_in(copies["exact_dup_of"].unique().implode()))
        .collect()
    )
    found = copies.join(originals, on="exact_dup_of", how="left")
    exact = np.full(n, -1, dtype=np.int64)
    exact[found["row"].to_numpy()] = found["of"].fill_null(-1).to_numpy()
    group = manifest["near_dup_group"].fill_null(-1).to_numpy().astype(np.int64)
    by_scores_exact = exact >= 0
    by_scores_near = ~keep_mask(exact, group) & ~by_scores_exact
    if "reason" in manifest.columns:
        qc = _is(manifest, "qc")
        is_exact = _is(manifest, "exact_copy") | (qc & by_scores_exact)
        is_near = _is(manifest, "near_copy") | (qc & by_scores_near)
    else:
        is_exact, is_near = by_scores_exact, by_scores_near
    exact_of = np.where(is_exact, np.maximum(exact, 0), -1)
    exact_of[is_exact & (exact < 0)] = -1
    near_of = np.where(is_near, group, -1)
    return exact_of, near_of


def _is(manifest: pl.DataFrame, reason: str) -> NDArray[np.bool_]:
    """Which cells have this ``reason``, compared in polars (``to_numpy`` of a string column
    makes a Python string per cell)."""
    return manifest["reason"].eq(reason).fill_null(False).to_numpy()


def _nearest_outside(
    base: NDArray[np.float32],
    labels: NDArray[Any],
    queries: NDArray[np.float32],
    outside: Sequence[Any],
) -> dict[Any, NDArray[np.float32]]:
    """For each label ``d`` of ``outside``: every query's distance to its nearest ``base`` row
    whose label is not ``d`` (exact). One search of the ``K_OUTSIDE`` nearest rows answers most
    queries; those whose neighbours all carry ``d`` are searched again without them."""
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(K_OUTSIDE, len(base))
    dist, rows = knn(base, queries, k, exact=True)
    near_labels = labels[np.maximum(rows, 0)]
    out = {}
    for d in outside:
        other = (near_labels != d) & (rows >= 0)
        found = other.any(axis=1)
        result = np.where(found, dist[np.arange(len(queries)), other.argmax(axis=1)], 0)
        rest = labels != d
        if not found.all() and rest.any():
            result[~found] = nearest_distance(base[rest], queries[~found])
        out[d] = result.astype(np.float32)
    return out


def _sample(rows: NDArray[np.int64], most: int, rng: np.random.Generator) -> NDArray[np.int64]:
    return rows if len(rows) <= most else np.sort(rng.choice(rows, most, replace=False))


def _far(
    manifest: pl.DataFrame,
    datasets: NDArray[np.int32],
    names: list[str],
    embedding: NDArray[np.float32] | None,
) -> tuple[str | None, dict[str, float]]:
    """The basis and each dataset's share of cells far from everything else (see module).
    ``datasets``: each cell's dataset as its position in ``names``."""
    novelty = manifest["novelty"]
    if novelty.is_not_null().any():
        values = novelty.fill_null(np.nan).to_numpy().astype(np.float64)
        cut = np.nanmedian(values)
        return "novelty", {
            d: float(np.mean(values[datasets == i] > cut)) for i, d in enumerate(names)
        }
    if embedding is None or len(names) < 2:
        return None, {}
    rng = np.random.default_rng(SEED)
    base = _sample(np.arange(len(datasets)), FAR_BASE, rng)
    picked = [_sample(np.flatnonzero(datasets == i), FAR_QUERIES, rng) for i in range(len(names))]
    queries = np.concatenate(picked)
    own = datasets[queries]
    codes = list(range(len(names)))
    # gathered block by block: rows spread over the whole map would otherwise keep its pages
    found = _nearest_outside(take(embedding, base), datasets[base], take(embedding, queries), codes)
    dist = {d: found[i][own == i] for i, d in enumerate(names)}
    cut = float(np.median(np.concatenate(list(dist.values()))))
    return "nearest_other_dataset", {d: float(np.mean(v > cut)) for d, v in dist.items()}


def _gain(
    manifest: pl.DataFrame,
    datasets: NDArray[np.int32],
    names: list[str],
    embedding: NDArray[np.float32] | None,
) -> dict[str, dict[str, float] | None]:
    """Each dataset's coverage gain on the selection (see module); empty without one.
    ``datasets``: each cell's dataset as its position in ``names``."""
    selected = manifest["selected"].fill_null(False).to_numpy()
    if embedding is None or not selected.any():
        return {}
    rng = np.random.default_rng(SEED)
    queries = take(embedding, _sample(np.arange(manifest.height), GAIN_QUERIES, rng))
    chosen = np.flatnonzero(selected)
    base, labels = take(embedding, chosen), datasets[chosen]
    # one search: label -1 is no dataset's, so its "nearest outside" is the nearest of all
    without = _nearest_outside(base, labels, queries, [-1, *range(len(names))])
    with_all = float(without[-1].mean(dtype=np.float64))
    out: dict[str, dict[str, float] | None] = {}
    for i, d in enumerate(names):
        if not (labels != i).any():
            out[d] = None  # the whole selection: nothing to compare with
            continue
        mean = float(without[i].mean(dtype=np.float64))
        out[d] = {
            "mean_distance": round(mean - with_all, 6),
            "relative": round((mean - with_all) / with_all, 6) if with_all > 0 else 0.0,
        }
    return out


def _sentence(row: dict[str, Any]) -> str:
    parts = []
    for field, found in row["only_here"].items():
        if found:
            listed = ", ".join(f"{f['value']} ({f['cells']} cells)" for f in found[:5])
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            parts.append(f"{field.replace('_', ' ')} found only here: {listed}{more}")
    for other, n in row["copies_of"].items():
        parts.append(f"{n['exact'] + n['near']} copies of {other} add nothing")
    if not parts:
        return "nothing found only here"
    return "; ".join(parts)


def adds_table(
    manifest: pl.DataFrame, embedding: NDArray[np.float32] | None = None
) -> list[dict[str, Any]]:
    """What each dataset adds (see the module's docstring), one JSON-able dict per dataset in
    source order. ``embedding``: an (n, d) array in manifest order, for ``far_share`` without
    a reference and for ``coverage_gain``."""
    names, datasets = codes(manifest["dataset_id"])  # each cell's dataset as a small integer
    selected = manifest["selected"].fill_null(False).to_numpy()
    exact_of, near_of = _copies(manifest)
    basis, far = _far(manifest, datasets, names, embedding)
    gain = _gain(manifest, datasets, names, embedding)
    qc = _is(manifest, "qc") if "reason" in manifest.columns else None
    counts: dict[str, pl.DataFrame] = {}
    for field in FIELDS:
        per = (
            pl.DataFrame({"d": manifest["dataset_id"], "v": manifest[field], "s": selected})
            .drop_nulls("v")
            .group_by("v", "d")
            .agg(pl.len().alias("cells"), pl.col("s").sum().alias("selected"))
        )
        alone = per.group_by("v").agg(pl.len().alias("n")).filter(pl.col("n") == 1)
        counts[field] = per.join(alone, on="v").sort(
            ["d", "cells", "v"], descending=[False, True, False]
        )
    rows = []
    for code, d in enumerate(names):
        inside = datasets == code
        copies_of: dict[str, dict[str, int]] = {}
        for kind, of in (("exact", exact_of), ("near", near_of)):
            hit = inside & (of >= 0)
            for other in datasets[of[hit]]:
                if other != code:
                    entry = copies_of.setdefault(names[other], {"exact": 0, "near": 0})
                    entry[kind] += 1
        row: dict[str, Any] = {
            "dataset_id": d,
            "pool": int(inside.sum()),
            "exact_copies": int((inside & (exact_of >= 0)).sum()),
            "near_copies": int((inside & (near_of >= 0)).sum()),
            "qc_filtered": None if qc is None else int((inside & qc).sum()),
            "selected": int((inside & selected).sum()),
            "copies_of": copies_of,
            "only_here": {
                field: [
                    {"value": v, "cells": int(c), "selected": int(s)}
                    for v, c, s in counts[field]
                    .filter(pl.col("d") == d)
                    .select("v", "cells", "selected")
                    .iter_rows()
                ]
                for field in FIELDS
            },
            "far_share": round(far[d], 4) if d in far else None,
            "far_basis": basis,
            "coverage_gain": gain.get(d),
        }
        row["adds"] = _sentence(row)
        rows.append(row)
    return rows

"""Neighbour scores on the embedding: near duplicates, local density, and dataset overlap.

One FAISS search of the pool against itself (``K_NEIGHBOURS`` nearest other cells per cell;
an exact flat index while ``n^2 d`` stays affordable, an IVF index above that, or any
index-factory string the user gives) feeds three native reductions:

- ``near_dup_group``: cells closer than ``eps`` to each other are joined by union-find (with
  the edges between exact copies), and each group of two or more is named by its smallest
  pool row. The default ``eps`` is ``EPS_FRACTION`` of the median distance from a cell to its
  nearest other cell (exact copies left out of that median). In 50 PCA dimensions two
  distinct cells are rarely closer than half that median, so groups hold cells that differ by
  little more than noise; ``scurate score`` writes the whole distribution to choose another.
- ``density``: the median over the pool of the mean distance to the ``K_NEIGHBOURS`` nearest
  other cells, divided by the cell's own mean distance. 1 is a typical neighbourhood, 2 one
  whose cells are twice as close. Unitless, so it reads the same on any embedding.
- the overlap between datasets: for each pair, how many cells of one have an exact copy, or
  a near duplicate, in the other.

The same neighbour lists, merged with one search against simulated doublets, give each cell's
doublet score (:mod:`scurate._compute.qc`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate import _core
from scurate import _heap as heap
from scurate._compute.dedup import MIN_GENES, find_exact_duplicates
from scurate._compute.doublets import doublet_scores
from scurate._compute.faiss_index import SEARCH_CHUNK, build_index, search_blocks, stored_rows
from scurate._compute.graph import PoolGraph, nearest_others
from scurate._compute.qc import QcValues
from scurate._compute.reference import Reference
from scurate._data import spill
from scurate._data.sources import Source
from scurate.errors import OptionError

K_NEIGHBOURS = 10
RECOMPUTE_ROWS = 16_384  # query rows whose neighbours are gathered at a time from the index
GRAPH_NEIGHBOURS = 24  # kept per cell for the policies (facility's k=15, with room for the
# cells choose() sets aside: see SelectionContext.neighbor_graph)
EPS_FRACTION = 0.25
CONTAINED = 0.5  # a dataset at least this much inside another is called out in the summary
DISTRIBUTION_QUANTILES = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)

Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class NeighbourScores:
    """Per pool row: nearest other row and its distance, density, near-duplicate group."""

    nn_row: NDArray[np.int64]
    nn_dist: NDArray[np.float32]
    density: NDArray[np.float32]
    near_dup_group: NDArray[np.int64]  # smallest row of the group; -1 outside any group
    eps: float
    info: dict[str, Any] = field(default_factory=dict)
    knn_d2: NDArray[np.float32] | None = None  # squared distances to the k nearest others
    index: Any = None  # the FAISS index over the pool that was searched
    graph: PoolGraph | None = None  # the GRAPH_NEIGHBOURS nearest others of each cell


def exact_d2(
    x: NDArray[np.float32], start: int, labels: NDArray[np.int64], index: Any = None
) -> NDArray[np.float32]:
    """Squared distances from rows ``start...`` of ``x`` to their neighbours ``labels`` (inf
    where a label is -1), computed again in float64 in one fixed order by the native core:
    FAISS's own come from BLAS, whose sums differ in the last bits with the number of threads,
    and the scores must not.

    Where ``x`` is mapped from disk (:mod:`scurate._data.spill`), the neighbours' rows are
    taken from ``index`` where it stores them exactly (a flat or IVF-flat index), else read
    from the map a block at a time: reading them from the map at random would bring all of it
    into memory. The values are the same either way."""
    if index is None or not spill.spilled(x):
        return _core.row_sq_dists(x, np.ascontiguousarray(labels, dtype=np.int64), start)
    out = np.empty(labels.shape, dtype=np.float32)
    for lo in range(0, len(labels), RECOMPUTE_ROWS):
        block = np.ascontiguousarray(labels[lo : lo + RECOMPUTE_ROWS], dtype=np.int64)
        queries = np.asarray(x[start + lo : start + lo + len(block)], dtype=np.float32)
        listed = np.unique(block[block >= 0])
        local = np.concatenate([queries, stored_rows(index, x, listed)])
        relabel = np.where(block >= 0, len(queries) + np.searchsorted(listed, block), -1)
        out[lo : lo + len(block)] = _core.row_sq_dists(local, relabel, 0)
        spill.release()
    return out


def neighbour_scores(
    embeddings: NDArray[np.float32],
    *,
    exact_dup_of: NDArray[np.int64] | None = None,
    eps: float | None = None,
    k: int = K_NEIGHBOURS,
    graph_k: int = GRAPH_NEIGHBOURS,
    index_factory: str | None = None,
    progress: Progress = _no_progress,
) -> NeighbourScores:
    """Search the pool against itself and reduce the neighbour lists (see the module doc).
    The same search, ``graph_k`` neighbours wide where that is more than ``k``, keeps each
    cell's ``graph_k`` nearest other cells for the policies (:class:`PoolGraph`); the scores
    read only the first ``k + 1`` columns, as a search ``k + 1`` wide returns them."""
    if eps is not None and not (math.isfinite(eps) and eps >= 0):
        msg = f"near_dup_eps={eps}: must be a distance >= 0"
        raise OptionError(msg)
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = x.shape[0]
    k_search = min(k + 1, n)  # +1: a cell finds itself
    k_wide = min(max(k, graph_k) + 1, n)
    index, index_info = build_index(x, factory=index_factory)
    nn_row = np.full(n, -1, dtype=np.int64)
    nn_dist = np.full(n, np.nan, dtype=np.float32)
    mean_dist = np.full(n, np.nan, dtype=np.float32)
    # the per-cell lists: on disk where they are large (see scurate._data.spill)
    knn_d2 = spill.Builder((n, max(k_search - 1, 0)), np.float32, fill=np.inf)
    width = max(min(graph_k, n - 1), 0)
    graph_rows = spill.Builder((n, width), np.int32, fill=-1)
    graph_dist = spill.Builder((n, width), np.float32, fill=np.inf)
    # One search. The default eps needs the pool's median, known only at the end, so each
    # block keeps the edges under a bound of its own (half its median, which is above a
    # quarter of the pool's wherever blocks look alike) and a block whose bound falls short
    # of the final eps is searched again.
    blocks: list[tuple[int, int, float, NDArray[np.int64], NDArray[np.int64]]] = []
    for start, _, wide in search_blocks(index, x, k_wide, SEARCH_CHUNK):
        stop = start + len(wide)
        wide = wide.astype(np.int64, copy=False)
        wide_d2 = exact_d2(x, start, wide, index)
        near_rows, near_dist = nearest_others(wide_d2, wide, start, width)
        graph_rows.put(start, near_rows)
        graph_dist.put(start, near_dist)
        labels = np.ascontiguousarray(wide[:, :k_search])
        d2 = np.ascontiguousarray(wide_d2[:, :k_search])
        nn_row[start:stop], nn_dist[start:stop], mean_dist[start:stop] = _core.knn_summary(
            d2, labels, start, k
        )
        others = (labels >= 0) & (labels != np.arange(start, stop)[:, None])
        knn_d2.put(start, np.sort(np.where(others, d2, np.inf), axis=1)[:, : knn_d2.shape[1]])
        bound = float(eps) if eps is not None else 0.5 * _positive_median(nn_dist[start:stop])
        blocks.append((start, stop, bound, *_edges(d2, labels, start, bound)))
        spill.release()  # the block's pages of a mapped embedding
        progress("scores: neighbours", stop, n)
    median_nn = _positive_median(nn_dist)
    chosen = EPS_FRACTION * median_nn if eps is None else float(eps)
    if eps is not None and chosen > median_nn:
        msg = (
            f"near_dup_eps={eps}: above the median distance of a cell to its nearest other "
            f"cell ({median_nn:.4g}); most cells would be called near duplicates"
        )
        raise OptionError(msg)
    edges_a: list[NDArray[np.int64]] = []
    edges_b: list[NDArray[np.int64]] = []
    searched_again = 0
    for start, stop, bound, ea, eb in blocks:
        if bound < chosen:
            d2, labels = index.search(x[start:stop], k_search)
            ea, eb = _edges(d2, labels.astype(np.int64, copy=False), start, chosen)
            searched_again += 1
        # the pairs' rows gathered by blocks in row order: a neighbour can lie anywhere in a
        # mapped embedding, and each row read faults in the pages around it (at ten million
        # cells, 1.6 GB of the map resident at once)
        keep = (
            np.linalg.norm(spill.take(x, ea) - spill.take(x, eb), axis=1) <= chosen
            if len(ea)
            else np.zeros(0, bool)
        )
        edges_a.append(ea[keep])
        edges_b.append(eb[keep])
        spill.release()
    a, b = np.concatenate(edges_a), np.concatenate(edges_b)
    if exact_dup_of is not None:
        copies = np.flatnonzero(exact_dup_of >= 0)
        a, b = np.r_[a, copies], np.r_[b, exact_dup_of[copies]]
    group = _core.union_find(n, a, b)
    typical = float(np.nanmedian(mean_dist)) if n > 1 else 1.0
    floor = max(typical * 1e-3, np.finfo(np.float32).tiny)
    density = (typical / np.maximum(mean_dist, floor)).astype(np.float32)
    info = {
        "k": k,
        "index": index_info,
        "eps": chosen,
        "eps_rule": (
            "given with --near-dup-eps"
            if eps is not None
            else f"{EPS_FRACTION} x the median distance of a cell to its nearest other cell"
            f" ({median_nn:.4g}, exact copies left out)"
        ),
        "median_nn_distance": median_nn,
        "blocks_searched_again": searched_again,
        "nn_distance_quantiles": {
            str(q): float(v)
            for q, v in zip(
                DISTRIBUTION_QUANTILES,
                np.nanquantile(nn_dist, DISTRIBUTION_QUANTILES) if n > 1 else [0.0] * 11,
                strict=True,
            )
        },
        "n_near_dup_groups": len(np.unique(group[group >= 0])),
        "n_in_near_dup_groups": int((group >= 0).sum()),
        "density_rule": f"median mean-distance to {k} nearest / the cell's own",
    }
    graph = PoolGraph(graph_rows.done(), graph_dist.done())
    return NeighbourScores(
        nn_row, nn_dist, density, group, chosen, info, knn_d2.done(), index, graph
    )


def _positive_median(values: NDArray[np.float32]) -> float:
    """Median of the finite values above zero (exact copies sit at zero), or 0."""
    positive = values[np.isfinite(values) & (values > 0)]
    return float(np.median(positive)) if len(positive) else 0.0


def _edges(
    d2: NDArray[np.float32], labels: NDArray[np.int64], start: int, bound: float
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(query row, neighbour row) of a search block for neighbours within ``bound``."""
    own = np.arange(start, start + len(labels))[:, None]
    close = (d2 <= np.float32(bound) ** 2) & (labels >= 0) & (labels != own)
    rows, cols = np.nonzero(close)
    return rows.astype(np.int64) + start, labels[rows, cols]


def keep_mask(
    exact_dup_of: NDArray[np.int64],
    near_dup_group: NDArray[np.int64],
    eligible: NDArray[np.bool_] | None = None,
) -> NDArray[np.bool_]:
    """The pool selection chooses from: no exact copy, and one cell per near-duplicate group
    (its smallest row that is not an exact copy).

    With ``eligible``, only those cells are kept, and a set of exact copies whose kept copy is
    not eligible keeps its lowest eligible row instead (``primary_only``: the copy that
    CELLxGENE marks primary stands for the cells deposited again)."""
    keep = exact_dup_of < 0
    if eligible is not None:
        rows = np.flatnonzero(eligible)
        copy_set = np.where(exact_dup_of[rows] >= 0, exact_dup_of[rows], rows)
        order = np.lexsort((rows, ~keep[rows], copy_set))  # per set: its kept copy, then rows
        first = np.diff(copy_set[order], prepend=-1) != 0
        keep = np.zeros(len(exact_dup_of), dtype=bool)
        keep[rows[order][first]] = True
    grouped = np.flatnonzero((near_dup_group >= 0) & keep)
    if len(grouped):
        groups = near_dup_group[grouped]
        order = np.lexsort((grouped, groups))
        first = np.r_[True, groups[order][1:] != groups[order][:-1]]
        keep[grouped] = False
        keep[grouped[order][first]] = True
    return keep


def dataset_overlap(
    dataset_id: pl.Series | Sequence[str] | NDArray[np.object_],
    exact_dup_of: NDArray[np.int64],
    near_dup_group: NDArray[np.int64] | None,
) -> list[dict[str, Any]]:
    """For each ordered pair (B, A): cells of B with an exact copy in A, and cells of B with
    no exact copy in A but a near duplicate there; sorted by the share of B that is in A."""
    exact_of = np.asarray(exact_dup_of, dtype=np.int64)
    # a polars column as it is: to_numpy would make a Python string per cell
    datasets = pl.Series(
        "dataset",
        dataset_id.cast(pl.String)
        if isinstance(dataset_id, pl.Series)
        else np.asarray(dataset_id, dtype=object).astype(str),
    )
    sizes = dict(datasets.to_frame().group_by("dataset").len().iter_rows())
    # only the cells in some copy or group: a copy, the cell it copies, a near duplicate
    copies = exact_of >= 0
    involved = copies.copy()
    involved[exact_of[copies]] = True
    if near_dup_group is not None:
        involved |= np.asarray(near_dup_group) >= 0
    rows = np.flatnonzero(involved)
    frame = pl.DataFrame(
        {
            "row": rows,
            "dataset": datasets.gather(rows),
            "exact": np.where(copies[rows], exact_of[rows], rows),
            "near": near_dup_group[rows] if near_dup_group is not None else np.full(len(rows), -1),
        }
    )

    def pairs(key: str) -> pl.DataFrame:
        grouped = frame.filter(pl.col(key) >= 0)
        grouped = grouped.filter(pl.col(key).is_duplicated())
        other = grouped.select(pl.col(key), pl.col("dataset").alias("in_dataset")).unique()
        return (
            grouped.join(other, on=key)
            .filter(pl.col("dataset") != pl.col("in_dataset"))
            .select("row", "dataset", "in_dataset")
            .unique()
        )

    exact = pairs("exact")
    near = pairs("near").join(exact, on=["row", "dataset", "in_dataset"], how="anti")
    counts = (
        exact.group_by("dataset", "in_dataset")
        .len("exact")
        .join(
            near.group_by("dataset", "in_dataset").len("near"),
            on=["dataset", "in_dataset"],
            how="full",
            coalesce=True,
        )
        .fill_null(0)
    )
    out = []
    for dataset, in_dataset, n_exact, n_near in counts.iter_rows():
        total = sizes[dataset]
        fraction = (n_exact + n_near) / total
        out.append(
            {
                "dataset": dataset,
                "in_dataset": in_dataset,
                "exact": int(n_exact),
                "near": int(n_near),
                "n_cells": int(total),
                "fraction": round(fraction, 4),
                "contained": fraction >= CONTAINED,
            }
        )
    out.sort(key=lambda r: (-r["fraction"], r["dataset"], r["in_dataset"]))
    return out


def overlap_line(entry: dict[str, Any]) -> str:
    """``lab_c: 9 % of its cells are in lab_a (60 exact, 0 near)``."""
    return (
        f"{entry['dataset']}: {100 * entry['fraction']:.0f} % of its cells are in "
        f"{entry['in_dataset']} ({entry['exact']:,} exact, {entry['near']:,} near)"
    )


@dataclass
class PoolScores:
    """Every score of the pool, ready for the manifest, and what the report says of them."""

    exact_dup_of: NDArray[np.int64]  # pool row of the kept copy, -1 for none
    near_dup_group: NDArray[np.int64]
    density: NDArray[np.float32]
    novelty: NDArray[np.float32] | None  # distance to the nearest reference cell
    nearest_reference: NDArray[np.object_] | None  # that cell's id
    nn_row: NDArray[np.int64]  # nearest other pool row (-1 for none)
    nn_dist: NDArray[np.float32]  # its distance
    info: dict[str, Any] = field(default_factory=dict)
    qc: QcValues | None = None  # counts, genes, mito fraction and doublet score per cell
    graph: PoolGraph | None = None  # each cell's nearest other cells, for the policies


def score_pool(
    sources: Sequence[Source],
    embeddings: NDArray[np.float32],
    *,
    reference: Reference | None = None,
    near_dup_eps: float | None = None,
    index_factory: str | None = None,
    dup_min_genes: int = MIN_GENES,
    doublets: bool = True,
    project_counts: Callable[[int, sp.csr_matrix], NDArray[np.float32]] | None = None,
    seed: int = 0,
    progress: Progress = _no_progress,
    timings: dict[str, float] | None = None,
) -> PoolScores:
    """Exact copies and QC values on the counts, then neighbour scores, doublet scores (unless
    ``doublets`` is false; simulated with ``project_counts`` where given, see
    :mod:`scurate._compute.qc`) and novelty on the embedding."""
    import time

    timings = timings if timings is not None else {}
    start = time.perf_counter()
    exact = find_exact_duplicates(sources, min_genes=dup_min_genes, progress=progress)
    heap.trim()  # what the stage freed, back to the system before the next one
    timings["duplicates"] = time.perf_counter() - start
    start = time.perf_counter()
    near = neighbour_scores(
        embeddings,
        exact_dup_of=exact.dup_of,
        eps=near_dup_eps,
        index_factory=index_factory,
        progress=progress,
    )
    heap.trim()  # what the stage freed, back to the system before the next one
    timings["neighbours"] = time.perf_counter() - start
    novelty = nearest_reference = None
    info: dict[str, Any] = {"exact": exact.info, "near": near.info}
    start = time.perf_counter()
    qc = _qc_values(sources, embeddings, exact, near, doublets, project_counts, seed)
    info["qc"] = qc.info
    # the index's last use: its lists (a copy of the embedding, small blocks each) go back now,
    # not after the manifest is built beside them (4.08 GB at ten million cells)
    near.index = near.knn_d2 = None
    heap.trim()  # what the stage freed, back to the system before the next one
    timings["doublets"] = time.perf_counter() - start
    if reference is not None:
        start = time.perf_counter()
        novelty, where = reference.nearest(embeddings)
        nearest_reference = reference.cell_ids[where]
        info["novelty"] = {
            "reference_cells": len(reference.cell_ids),
            "quantiles": {
                str(q): float(v)
                for q, v in zip(
                    DISTRIBUTION_QUANTILES,
                    np.quantile(novelty, DISTRIBUTION_QUANTILES),
                    strict=True,
                )
            },
            "median_nn_distance_in_pool": near.info["median_nn_distance"],
        }
        timings["novelty"] = time.perf_counter() - start
    return PoolScores(
        exact.dup_of,
        near.near_dup_group,
        near.density,
        novelty,
        nearest_reference,
        near.nn_row,
        near.nn_dist,
        info,
        qc,
        near.graph,
    )


def _qc_values(
    sources: Sequence[Source],
    embeddings: NDArray[np.float32],
    exact: Any,
    near: NeighbourScores,
    doublets: bool,
    project_counts: Callable[[int, sp.csr_matrix], NDArray[np.float32]] | None,
    seed: int,
) -> QcValues:
    """The pool's QC values: counts from the duplicate pass, the doublet score from the
    neighbour lists (seeded by ``seed``)."""
    n = embeddings.shape[0]
    counts = exact.qc
    n_counts = np.full(n, np.nan) if counts is None else counts.n_counts
    n_genes = np.full(n, -1, dtype=np.int64) if counts is None else counts.n_genes
    mito = np.full(n, np.nan) if counts is None else counts.mito_counts
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(n_counts > 0, mito / n_counts, np.where(n_counts == 0, 0.0, np.nan))
    skipped = exact.info.get("skipped_sources", {})
    info: dict[str, Any] = {
        "no_counts": {d: r for d, r in skipped.items()},
        "mito_genes_from": {} if counts is None else counts.mito_from,
    }
    score = np.full(n, np.nan, dtype=np.float32)
    if doublets and near.knn_d2 is not None:
        counts_ok = [s.dataset_id not in skipped for s in sources]
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
        score, info["doublets"] = doublet_scores(
            sources,
            np.ascontiguousarray(embeddings, dtype=np.float32),
            near.knn_d2,
            near.index,
            project_counts=project_counts,
            counts_ok=counts_ok,
            rng=rng,
        )
    else:
        info["doublets"] = {"not_scored": "doublets=off"}
    return QcValues(n_counts.astype(np.float32), n_genes, fraction.astype(np.float32), score, info)

"""The native selection kernels' wrappers: farthest-first traversal (greedy k-center, optionally
weighted) over an embedding, lazy or stochastic greedy facility location over a sparse graph,
and plaid-grid covering."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from scurate import _core
from scurate._data import spill


def farthest_first(
    embeddings: NDArray[np.float32],
    budget: int,
    *,
    initial: NDArray[np.int64] | None = None,
    first: int = 0,
    covered: NDArray[np.float32] | None = None,
    weights: NDArray[np.float32] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Pick ``budget`` rows, each the farthest from all picked before (and from ``initial``,
    or from a reference corpus when ``covered`` is given).

    Parameters
    ----------
    embeddings
        (n_cells, n_dims) array; converted to C-contiguous float32 if it is not.
    budget
        Rows to pick.
    initial
        Rows already chosen: they count as covered and are never returned.
    first
        The first pick when ``initial`` is empty and no ``covered`` is given.
    covered
        Each row's distance to a reference corpus outside ``embeddings`` (inf for none): the
        traversal starts as if that corpus were already picked, so the first pick is the row
        farthest from it. Cannot be combined with ``initial``.
    weights
        Per-row weights (finite, >= 0): each pick is then the row of largest
        ``weights[i] * d(i, picked)``, and the radii are that weighted maximum. Not with
        ``covered``.

    Returns
    -------
    The picked rows in priority order, and the covering radius (largest distance of any row to
    its nearest pick) after each pick. The result is exact: it equals the plain O(n * budget)
    traversal, ties going to the lowest row.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if covered is not None:
        if initial is not None or weights is not None:
            msg = "farthest_first: covered cannot be combined with initial or weights"
            raise ValueError(msg)
        return _core.kcenter_covered(x, np.ascontiguousarray(covered, dtype=np.float32), budget)
    seeds = None if initial is None else np.ascontiguousarray(initial, dtype=np.int64)
    w = None if weights is None else np.ascontiguousarray(weights, dtype=np.float32)
    return _core.kcenter(x, budget, initial=seeds, first=first, weights=w)


def covering_radius(embeddings: NDArray[np.float32], selected: NDArray[np.int64]) -> float:
    """Largest distance of any row to its nearest selected row.

    Found as the distance of the next farthest-first pick after ``selected``, so it costs one
    pruned traversal rather than an all-pairs search.
    """
    n = int(embeddings.shape[0])
    if len(selected) >= n:
        return 0.0
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    nxt, _ = farthest_first(x, 1, initial=np.asarray(selected, dtype=np.int64))
    far = x[int(nxt[0])].astype(np.float64)
    d2 = ((x[np.asarray(selected)].astype(np.float64) - far) ** 2).sum(axis=1)
    return float(np.sqrt(d2.min()))


def greedy_facility_location(
    indptr: NDArray[np.int64],
    indices: NDArray[np.int32] | NDArray[np.int64],
    values: NDArray[np.float32],
    budget: int,
    *,
    sample: int | None = None,
    seed: int = 0,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Greedy facility location over a sparse similarity graph, stored CSR by candidate.

    Parameters
    ----------
    indptr
        (n_rows + 1,) row pointers; converted to C-contiguous int64 if it is not.
    indices
        Row ``j``'s entries ``indices[indptr[j]:indptr[j + 1]]`` are the cells that candidate
        ``j`` covers; int32 is read as it is (half the memory of a large graph), any other
        integer type converted to C-contiguous int64.
    values
        ``sim(i, j)`` for each entry of ``indices`` (finite, >= 0); converted to C-contiguous
        float32 if it is not.
    budget
        Candidates to pick, between 0 and the number of rows.
    sample
        None: the exact lazy greedy (Minoux). A positive number: stochastic greedy
        (Mirzasoleiman et al. 2015), each pick the best of ``sample`` candidates drawn
        uniformly from those not yet picked, with lazy bounds inside the sample.
    seed
        Seeds the stochastic greedy's draws (a 64-bit integer); unused by the exact one.

    Returns
    -------
    The picks in greedy order (ties to the lowest row), and the objective
    ``F = sum_i max_{j picked} sim(i, j)`` after each pick. Both are prefix-ordered: the first
    ``m`` picks of a run are the run with budget ``m`` (same ``sample`` and ``seed``).
    """
    if sample is not None and sample < 1:
        msg = f"sample: expected None or a positive integer, got {sample}"
        raise ValueError(msg)
    index = np.int32 if np.asarray(indices).dtype == np.int32 else np.int64
    return _core.facility_location(
        np.ascontiguousarray(indptr, dtype=np.int64),
        np.ascontiguousarray(indices, dtype=index),
        np.ascontiguousarray(values, dtype=np.float32),
        budget,
        sample=0 if sample is None else int(sample),
        seed=int(seed) & 0xFFFFFFFFFFFFFFFF,
    )


def covering_graph(
    near: NDArray[np.integer], sim: NDArray[np.floating]
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float32]]:
    """Facility location's graph by candidate, from each cell's neighbour list.

    Parameters
    ----------
    near
        (n_cells, k) rows of each cell's neighbours, -1 for none (converted to C-contiguous
        int32 if it is not).
    sim
        (n_cells, k) the similarity of each listed neighbour, finite and >= 0 where ``near``
        is not -1 (converted to C-contiguous float32 if it is not).

    Returns
    -------
    ``(indptr, indices, values)`` for :func:`greedy_facility_location`: row ``j`` lists ``j``
    itself (similarity 1) and every cell ``i`` whose list holds ``j`` (with that entry's
    similarity), in increasing order. Built in two passes over the lists, with no sort and no
    temporary beyond the output. Lists mapped from disk (:mod:`scurate._data.spill`) are read
    a block at a time, their pages given back after each block.
    """
    if not (spill.spilled(near) or spill.spilled(sim)):
        return _core.covering_graph(
            np.ascontiguousarray(near, dtype=np.int32), np.ascontiguousarray(sim, dtype=np.float32)
        )
    if near.shape != sim.shape or near.ndim != 2:
        msg = "near and sim: expected the same shape"
        raise ValueError(msg)
    n = near.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    for first, block in spill.blocks(near):
        _core.covering_count_block(np.ascontiguousarray(block, dtype=np.int32), first, indptr)
    np.cumsum(indptr, out=indptr)
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    values = np.empty(int(indptr[-1]), dtype=np.float32)
    cursor = indptr[:-1].copy()
    for first, block in spill.blocks(near):
        _core.covering_fill_block(
            np.ascontiguousarray(block, dtype=np.int32),
            np.ascontiguousarray(sim[first : first + len(block)], dtype=np.float32),
            first,
            indptr,
            cursor,
            indices,
            values,
        )
    return indptr, indices, values


def grid_covering(
    embeddings: NDArray[np.float32], target: int, *, alpha: float = 0.1, max_iter: int = 100
) -> tuple[NDArray[np.int64], int, float]:
    """The plaid grid (geosketch's covering) with about ``target`` non-empty boxes.

    Parameters
    ----------
    embeddings
        (n_cells, n_dims) array; converted to C-contiguous float32 if it is not.
    target
        The number of non-empty boxes wanted.
    alpha
        Tolerance: the bisection of the box side stops once the number of boxes is within
        ``[target / (1 + alpha), target * (1 + alpha)]``.
    max_iter
        Bisection steps at most.

    Returns
    -------
    Each row's box id (numbered by first row), the number of non-empty boxes, and the box side.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    return _core.grid_covering(x, target, alpha=alpha, max_iter=max_iter)

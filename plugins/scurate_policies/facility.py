"""Facility location: representative cells, by lazy greedy over a sparse kNN similarity graph.

The objective is ``F(S) = sum_i max_{j in S} sim(i, j)`` over every pool cell ``i``, where
``sim(i, j) = exp(-(d(i, j) / sigma) ** 2)`` for ``j`` among the ``k`` nearest neighbours of
``i`` (FAISS, see :meth:`scurate.SelectionContext.neighbors`), ``sim(i, i) = 1`` and 0 for
every other pair. No n x n matrix is built: the graph has ``n * (k + 1)`` entries. ``F`` is at
most the number of cells (every cell selected). Greedy picks are prefix-ordered: the first
``m`` of a run with budget ``B`` are the run with budget ``m``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scurate import OptionError, SelectionContext
from scurate.plugin import greedy_facility_location

DEFAULT_K = 15


def _number(ctx: SelectionContext, key: str, default: str, *, integer: bool) -> float:
    text = ctx.param(key, default)
    try:
        value = float(int(text)) if integer else float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or not np.isfinite(value):
        kind = "a positive integer" if integer else "a positive number"
        msg = f"params[{key!r}]={text!r}: expected {kind}"
        raise OptionError(msg)
    return value


def knn_similarity(
    ctx: SelectionContext, k: int, sigma: float | None = None
) -> tuple[sp.csr_matrix, float]:
    """The sparse similarity graph by candidate (row ``j`` lists the cells ``j`` covers), and
    the ``sigma`` used (by default the median distance of a cell to its ``k``-th neighbour)."""
    n = ctx.n_cells
    k = min(k, n - 1)
    rows = np.arange(n, dtype=np.int64)
    if k == 0:
        return sp.identity(n, dtype=np.float32, format="csr"), 1.0
    dist, idx = ctx.neighbors(rows, k + 1)
    keep = (idx != rows[:, None]) & (idx >= 0)
    keep &= np.cumsum(keep, axis=1) <= k  # a cell's k nearest others (a copy may come first)
    if sigma is None:
        kth = np.where(keep, dist, -np.inf).max(axis=1)
        positive = kth[np.isfinite(kth) & (kth > 0)]
        sigma = float(np.median(positive)) if positive.size else 1.0
    cell = np.broadcast_to(rows[:, None], idx.shape)[keep]
    near = idx[keep]
    sim = np.exp(-((dist[keep].astype(np.float64) / sigma) ** 2)).astype(np.float32)
    covers = sp.csr_matrix((sim, (near, cell)), shape=(n, n))  # [j, i] = sim(i, j)
    covers = covers + sp.identity(n, dtype=np.float32, format="csr")
    covers.sum_duplicates()
    return covers.tocsr(), sigma


def facility_location(ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """Greedy facility location; records the objective after each pick.

    Parameters (``--param``): ``k`` (neighbours per cell, default 15), ``sigma`` (the kernel's
    length scale; default the median distance of a cell to its ``k``-th neighbour).
    ``ctx.info``: ``objective`` (final F), ``objective_curve`` (F after each pick, a list),
    ``objective_max`` (F with every cell selected), ``k``, ``sigma``.
    """
    k = int(_number(ctx, "k", str(DEFAULT_K), integer=True))
    sigma = _number(ctx, "sigma", "1", integer=False) if "sigma" in ctx.params else None
    graph, used = knn_similarity(ctx, k, sigma)
    order, objective = greedy_facility_location(graph.indptr, graph.indices, graph.data, budget)
    ctx.info.update(
        objective=float(objective[-1]) if budget else 0.0,
        objective_curve=objective.tolist(),
        objective_max=float(ctx.n_cells),
        k=k,
        sigma=used,
    )
    return order

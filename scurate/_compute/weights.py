"""Per-cell weights: how many pool cells each selected cell stands for.

A selected cell's weight is the size of its Voronoi cell in the embedding: the number of pool
cells (itself included) whose nearest selected cell it is, found with FAISS against the
selected set; every selected cell counts itself, so each weight is at least 1. The weights of
a selection sum to the pool size, so a trainer that weights each selected cell's loss by it
sees the pool's composition again. Ties (a pool cell equally near to two selected cells) go to
whichever FAISS returns first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scurate import _backend as backend
from scurate._compute.faiss_index import (
    build_index,
    exact_search_affordable,
    flat_index,
    ivf_lists,
    nearest_in,
    serialize,
)
from scurate._compute.faiss_index import nearest as faiss_nearest
from scurate._compute.graph import CHUNK, PoolGraph
from scurate._data import spill

log = logging.getLogger(__name__)

ROUNDING = 1e-4  # relative error a float32 distance from FAISS may carry


@dataclass
class Assignment:
    """Each pool cell's nearest selected cell (as a rank into the selection) and distance."""

    nearest: NDArray[np.int64]
    distance: NDArray[np.float32]
    exact: bool

    def weights(self, n_selected: int) -> NDArray[np.int64]:
        """Pool cells per selected cell, in selection order; they sum to the pool size."""
        return np.bincount(self.nearest, minlength=n_selected).astype(np.int64)

    def summary(self, n_selected: int) -> dict[str, Any]:
        w = self.weights(n_selected)
        return {
            "method": "exact (FAISS flat)" if self.exact else "approximate (FAISS IVF)",
            "sum": int(w.sum()),
            "min": int(w.min()) if w.size else 0,
            "median": float(np.median(w)) if w.size else 0.0,
            "max": int(w.max()) if w.size else 0,
        }

    def covering_radius(
        self, embeddings: NDArray[np.float32], selected: NDArray[np.int64], *, block: int = 64
    ) -> float:
        """The largest distance of any pool cell to its nearest selected cell, exactly, from
        this one search: cells are taken in decreasing order of the distance the search found,
        and their exact distance (float64, to every selected cell) is computed until the next
        found distance is below the largest exact one. A search finds a selected cell at least
        as far as the nearest (up to float32 rounding, allowed for by :data:`ROUNDING`), so no
        cell after that can be farther; an exact search stops after the first block."""
        found = self.distance
        by_found = np.argsort(-found, kind="stable")
        picks = spill.take(embeddings, np.asarray(selected)).astype(np.float64)
        picks_sq = (picks**2).sum(axis=1)
        best = 0.0
        for start in range(0, len(by_found), block):
            cells = by_found[start : start + block]
            if found[cells[0]] < best * (1 - ROUNDING):
                break
            points = np.asarray(embeddings[cells], dtype=np.float64)
            d2 = (points**2).sum(axis=1)[:, None] + picks_sq[None, :] - 2 * points @ picks.T
            two = min(2, len(picks))  # the expansion rounds: compare its two nearest exactly
            near = np.argpartition(d2, two - 1, axis=1)[:, :two]
            diff = points[:, None, :] - picks[near]  # exactly, as differences
            best = max(best, float(np.sqrt((diff**2).sum(axis=2).min(axis=1).max())))
        spill.release()
        return best


def assign(
    embeddings: NDArray[np.float32],
    selected: NDArray[np.int64],
    *,
    exact: bool | None = None,
    graph: PoolGraph | None = None,
) -> Assignment:
    """Find each pool cell's nearest selected cell.

    Parameters
    ----------
    embeddings
        (n_cells, n_dims) float32, one row per pool cell.
    selected
        Rows of the selection, in priority order.
    exact
        Exact flat search, or IVF (approximate) when False. By default exact wherever it is
        affordable (:func:`scurate._compute.faiss_index.exact_search_affordable`).
    graph
        The pool's neighbour lists (every pool row, as scoring kept them). Where the search is
        approximate, a cell with a selected cell among its listed neighbours takes the first
        of them, its nearest selected cell as far as the lists are exact (any nearer selected
        cell would be listed before it); only the other cells are searched.
    """
    n, dims = embeddings.shape
    if exact is None:
        exact = exact_search_affordable(n, len(selected), dims)
    rows = np.asarray(selected, dtype=np.int64)
    base = np.ascontiguousarray(spill.take(embeddings, rows), dtype=np.float32)
    nearest = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, np.inf, dtype=np.float32)
    if not exact and graph is not None and graph.cells is None and graph.n_cells == n:
        _from_lists(graph, rows, nearest, distance)
    todo = np.flatnonzero(nearest < 0)
    if len(todo):
        factory = "Flat" if exact else f"IVF{ivf_lists(len(base))},Flat"
        index, _ = build_index(base, factory=factory, n_queries=len(todo))
        if not exact:
            log.info("weights: approximate nearest selected cell (IVF, %d selected)", len(base))
        step = spill.BLOCK_ROWS
        blocks = [todo[start : start + step] for start in range(0, len(todo), step)]
        queries = (spill.take(embeddings, rows_in) for rows_in in blocks)  # bounded copies
        run = backend.current()  # on Ray: the selection's index shipped once, a task a block
        search = partial(faiss_nearest, index)
        if not run.in_process:
            search = partial(nearest_in, serialize(index))
        found = run.map(search, queries, label=_weights_label)
        for rows_in, (dist, near) in zip(blocks, found, strict=True):
            distance[rows_in], nearest[rows_in] = dist, near
    missed = np.flatnonzero(nearest < 0)  # an approximate search can come back empty
    if len(missed):
        distance[missed], nearest[missed] = faiss_nearest(
            flat_index(base), spill.take(embeddings, missed)
        )
    # a selected cell stands for itself (an exact copy of it may be selected too)
    nearest[rows] = np.arange(len(rows))
    distance[rows] = 0.0
    return Assignment(nearest, distance, exact)


def _weights_label(queries: NDArray[np.float32]) -> str:
    return f"the weights' search of {len(queries)} cells"


def _from_lists(
    graph: PoolGraph,
    selected: NDArray[np.int64],
    nearest: NDArray[np.int64],
    distance: NDArray[np.float32],
) -> None:
    """Fill ``nearest`` (rank in the selection) and ``distance`` for the cells that list a
    selected cell among their neighbours: the first such, nearest first."""
    rank = np.full(len(nearest), -1, dtype=np.int64)
    rank[selected] = np.arange(len(selected))
    for start in range(0, len(nearest), CHUNK):
        listed = graph.rows[start : start + CHUNK]
        ranks = np.where(listed >= 0, rank[np.maximum(listed, 0)], -1)
        hit = ranks >= 0
        first = hit.argmax(axis=1)
        found = np.flatnonzero(hit.any(axis=1))
        nearest[start + found] = ranks[found, first[found]]
        distance[start + found] = graph.dist[start + found, first[found]]
        spill.release()

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
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scurate._compute.faiss_index import SEARCH_CHUNK, exact_search_affordable, flat_index

log = logging.getLogger(__name__)

HNSW_M = 32  # graph degree of the approximate index used where exact search is too costly
HNSW_EF_SEARCH = 128


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
            "method": "exact (FAISS flat)" if self.exact else "approximate (FAISS HNSW)",
            "sum": int(w.sum()),
            "min": int(w.min()) if w.size else 0,
            "median": float(np.median(w)) if w.size else 0.0,
            "max": int(w.max()) if w.size else 0,
        }


def _index(base: NDArray[np.float32], *, exact: bool) -> Any:
    if exact:
        return flat_index(base)
    import faiss

    index = faiss.IndexHNSWFlat(base.shape[1], HNSW_M)
    index.hnsw.efSearch = HNSW_EF_SEARCH
    index.add(base)
    return index


def assign(
    embeddings: NDArray[np.float32], selected: NDArray[np.int64], *, exact: bool | None = None
) -> Assignment:
    """Find each pool cell's nearest selected cell.

    Parameters
    ----------
    embeddings
        (n_cells, n_dims) float32, one row per pool cell.
    selected
        Rows of the selection, in priority order.
    exact
        Exact flat search, or HNSW (approximate) when False. By default exact wherever it is
        affordable (:func:`scurate._compute.faiss_index.exact_search_affordable`).
    """
    n, dims = embeddings.shape
    if exact is None:
        exact = exact_search_affordable(n, len(selected), dims)
    base = np.ascontiguousarray(embeddings[np.asarray(selected)], dtype=np.float32)
    index = _index(base, exact=exact)
    if not exact:
        log.info("weights: approximate nearest selected cell (HNSW, %d selected)", len(base))
    nearest = np.empty(n, dtype=np.int64)
    distance = np.empty(n, dtype=np.float32)
    for start in range(0, n, SEARCH_CHUNK):
        block = np.ascontiguousarray(embeddings[start : start + SEARCH_CHUNK], dtype=np.float32)
        d2, idx = index.search(block, 1)
        nearest[start : start + len(block)] = idx[:, 0]
        distance[start : start + len(block)] = np.sqrt(np.maximum(d2[:, 0], 0.0))
    # a selected cell stands for itself (HNSW may miss it; an exact copy may be selected too)
    rows = np.asarray(selected, dtype=np.int64)
    nearest[rows] = np.arange(len(rows))
    distance[rows] = 0.0
    return Assignment(nearest, distance, exact)

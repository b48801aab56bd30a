"""k-nearest-neighbour search for policies: exact where affordable, FAISS IVF above that.

:meth:`scurate.SelectionContext.neighbors` and the ``facility`` policy's kNN graph use it.
Exact (a flat index) when ``n_queries * n_base * dims`` is within
:data:`scurate._compute.faiss_index.CPU_EXACT_LIMIT` or FAISS has a GPU; otherwise an IVF index with about
``sqrt(n_base)`` lists trained on evenly spaced rows (deterministic), searching
:data:`NPROBE` lists per query (recall of the 16 nearest 0.996 on the 100k benchmark data; few
lists keep the training cheap, which is most of the cost with more lists).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scurate._compute.faiss_index import SEARCH_CHUNK, exact_search_affordable, flat_index

log = logging.getLogger(__name__)

NPROBE = 6
TRAIN_PER_LIST = 40  # training rows per IVF list
KMEANS_ITERATIONS = 10  # of the IVF training (FAISS's default 25 buys no recall here)


def build_index(base: NDArray[np.float32], *, exact: bool) -> Any:
    """A FAISS index over ``base``: flat (exact) or IVF (approximate)."""
    if exact:
        return flat_index(base)
    import faiss

    n, dims = base.shape
    nlist = max(1, min(int(math.sqrt(n)), n // TRAIN_PER_LIST))
    quantizer = faiss.IndexFlatL2(dims)
    index = faiss.IndexIVFFlat(quantizer, dims, nlist)
    index.cp.niter = KMEANS_ITERATIONS
    step = max(1, n // (nlist * TRAIN_PER_LIST))
    index.train(np.ascontiguousarray(base[::step]))
    index.add(base)
    index.nprobe = min(NPROBE, nlist)
    log.info("kNN: IVF%d,Flat over %d rows, nprobe %d", nlist, n, index.nprobe)
    return index


def search(
    index: Any, queries: NDArray[np.float32], k: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Euclidean distances and rows of the ``k`` nearest base rows of each query (nearest
    first; -1 and inf where an approximate index found fewer than ``k``)."""
    n = len(queries)
    dist = np.empty((n, k), dtype=np.float32)
    rows = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, SEARCH_CHUNK):
        block = np.ascontiguousarray(queries[start : start + SEARCH_CHUNK], dtype=np.float32)
        d2, idx = index.search(block, k)
        dist[start : start + len(block)] = np.sqrt(np.maximum(d2, 0.0))
        rows[start : start + len(block)] = idx
    missing = rows < 0
    dist[missing] = np.inf
    return dist, rows


def knn(
    base: NDArray[np.float32], queries: NDArray[np.float32], k: int, *, exact: bool | None = None
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The ``k`` nearest ``base`` rows of each query: (distances, rows), nearest first."""
    if not 1 <= k <= len(base):
        msg = f"k: must be between 1 and the {len(base)} base rows, got {k}"
        raise ValueError(msg)
    if exact is None:
        exact = exact_search_affordable(len(queries), len(base), base.shape[1])
    base = np.ascontiguousarray(base, dtype=np.float32)
    return search(build_index(base, exact=exact), queries, k)

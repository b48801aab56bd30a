"""Neighbour search with FAISS: the GPU index where faiss-gpu finds a GPU, else the CPU one."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

SEARCH_CHUNK = 65536  # query rows per search call: bounded memory for the result arrays


def gpu_count() -> int:
    """GPUs FAISS can use (0 with faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def flat_index(base: NDArray[np.float32]) -> Any:
    """An exact L2 index over ``base``, moved to the GPU when one is available."""
    import faiss

    index: Any = faiss.IndexFlatL2(base.shape[1])
    if gpu_count() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
        log.info("FAISS: using %d GPU(s)", gpu_count())
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    return index


# exact search costs n_queries * n_base * dims; above this on the CPU the report skips it
CPU_EXACT_LIMIT = 2e11


def exact_search_affordable(n_queries: int, n_base: int, dims: int) -> bool:
    """Whether an exact nearest-neighbour pass is cheap enough to run by default."""
    return gpu_count() > 0 or n_queries * n_base * dims <= CPU_EXACT_LIMIT


def nearest_distance(
    base: NDArray[np.float32], queries: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Euclidean distance from each query row to its nearest ``base`` row (exact)."""
    index = flat_index(base)
    out = np.empty(len(queries), dtype=np.float32)
    for start in range(0, len(queries), SEARCH_CHUNK):
        block = np.ascontiguousarray(queries[start : start + SEARCH_CHUNK], dtype=np.float32)
        d2, _ = index.search(block, 1)
        out[start : start + len(block)] = np.sqrt(np.maximum(d2[:, 0], 0.0))
    return out

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


IVF_PROBES = 16  # IVF lists searched per query: recall of the nearest neighbour ~0.99 here
TRAIN_PER_LIST = 64  # training rows per IVF list (FAISS warns below 39)


def even_rows(n: int, m: int) -> NDArray[np.int64]:
    """``m`` rows spread evenly over ``0..n-1`` (all rows when ``m >= n``): deterministic."""
    if m >= n:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, m).astype(np.int64))


def default_factory(n: int, dims: int) -> str:
    """``Flat`` while an exact self-search stays affordable, else ``IVF{4 sqrt n},Flat``."""
    if exact_search_affordable(n, n, dims):
        return "Flat"
    n_lists = int(min(65536, max(16, 4 * np.sqrt(n))))
    return f"IVF{n_lists},Flat"


def build_index(
    base: NDArray[np.float32], *, factory: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """A FAISS L2 index over ``base`` built from an index-factory string (the default one when
    None), trained on evenly spread rows where it needs training, with ``nprobe`` set for IVF.
    Returns the index and a description for the report."""
    import faiss

    from scurate.errors import OptionError

    x = np.ascontiguousarray(base, dtype=np.float32)
    n, dims = x.shape
    chosen = factory or default_factory(n, dims)
    if chosen == "Flat":
        return flat_index(x), {"factory": "Flat", "exact": True}
    try:
        index: Any = faiss.index_factory(dims, chosen, faiss.METRIC_L2)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "not understood"
        msg = f"--index-factory '{chosen}': FAISS cannot build it ({first})"
        raise OptionError(msg) from exc
    info: dict[str, Any] = {"factory": chosen, "exact": False}
    if not index.is_trained:
        ivf = faiss.try_extract_index_ivf(index)
        lists = int(ivf.nlist) if ivf is not None else 256
        rows = even_rows(n, max(TRAIN_PER_LIST * lists, 10_000))
        if len(rows) < lists:
            msg = f"--index-factory '{chosen}': {lists} lists need more than the {n} cells"
            raise OptionError(msg)
        index.train(x[rows])
        info["trained_on"] = len(rows)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = min(IVF_PROBES, int(ivf.nlist))
        info["nprobe"] = int(ivf.nprobe)
    index.add(x)
    return index, info

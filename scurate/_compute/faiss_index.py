"""Every FAISS index scurate builds, and every search it runs: the one module that imports FAISS.

One rule picks the index. A flat (exact) index while ``n_queries * n_base * dims`` stays within
:data:`CPU_EXACT_LIMIT`, or wherever faiss-gpu finds a GPU (the flat index then moves onto it).
Above that, an inverted-file index: ``IVF{2 sqrt(n)},Flat``, at most one list per
:data:`TRAIN_PER_LIST` base rows, trained with :data:`KMEANS_ITERATIONS` k-means iterations on
evenly spread rows (deterministic), searching :data:`NPROBE` lists per query. A user's
index-factory string replaces the rule, trained the same way.

``benchmarks/bench_ivf_rule.py`` chose it against the two rules it replaced (scoring's
``IVF{4 sqrt n}``/16 probes and the policies' ``IVF{sqrt n}``/6): on 1M cells x 50 dims it
scored in 0.91x the time of scoring's rule with the same recall of the 10 nearest (0.973 vs
0.971), where the policies' rule took 1.3x; on 100k cells in 0.39x (recall 0.992 vs 0.995).

Distances returned by the searches are Euclidean (FAISS works in squared L2).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scurate._data import spill
from scurate.errors import OptionError

log = logging.getLogger(__name__)

SEARCH_CHUNK = 65536  # query rows per search call: bounded memory for the result arrays
CPU_EXACT_LIMIT = 2e11  # n_queries * n_base * dims of an exact search still run on the CPU
LISTS_PER_SQRT_N = 2  # IVF lists: this many times sqrt(n)
NPROBE = 10  # IVF lists searched per query
TRAIN_PER_LIST = 40  # training rows per IVF list (FAISS warns below 39)
KMEANS_ITERATIONS = 10  # of the IVF training (FAISS's default 25 buys no recall here)


def gpu_count() -> int:
    """GPUs FAISS can use (0 with faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def exact_search_affordable(n_queries: int, n_base: int, dims: int) -> bool:
    """Whether an exact nearest-neighbour pass is cheap enough to run by default."""
    return gpu_count() > 0 or n_queries * n_base * dims <= CPU_EXACT_LIMIT


def ivf_lists(n_base: int) -> int:
    """The rule's number of IVF lists for ``n_base`` rows."""
    return max(1, min(int(LISTS_PER_SQRT_N * math.sqrt(n_base)), n_base // TRAIN_PER_LIST))


def default_factory(n_base: int, dims: int, n_queries: int | None = None) -> str:
    """``Flat`` while an exact search of ``n_queries`` (default: the base itself) is
    affordable, else the rule's ``IVF{lists},Flat``."""
    queries = n_base if n_queries is None else n_queries
    if exact_search_affordable(queries, n_base, dims):
        return "Flat"
    return f"IVF{ivf_lists(n_base)},Flat"


def even_rows(n: int, m: int) -> NDArray[np.int64]:
    """``m`` rows spread evenly over ``0..n-1`` (all rows when ``m >= n``): deterministic."""
    if m >= n:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, m).astype(np.int64))


def flat_index(base: NDArray[np.float32]) -> Any:
    """An exact L2 index over ``base``, moved to the GPU when one is available."""
    import faiss

    index: Any = faiss.IndexFlatL2(base.shape[1])
    if gpu_count() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
        log.info("FAISS: using %d GPU(s)", gpu_count())
    _add(index, np.ascontiguousarray(base, dtype=np.float32))
    return index


def _add(index: Any, x: NDArray[np.float32]) -> None:
    """Add ``x`` a block at a time: a mapped embedding's pages are dropped after each block
    (:mod:`scurate._data.spill`), and FAISS adds in blocks of its own anyway.

    An inverted-file index (not behind a transform) gets each list's room made first: every
    row is assigned to its list once, each list's vectors reserved at its final length, and
    the rows added with those assignments (``add_core``, the lists ``add`` itself would find).
    Grown block by block, FAISS's lists over-allocate by half on average (measured: 0.63 GB
    held for 0.40 GB of vectors, 2M rows x 50 dims), which at ten million cells is a gigabyte
    more than the vectors themselves."""
    import faiss

    ivf = index if isinstance(index, faiss.IndexIVF) else None  # not one behind a transform
    own = None if ivf is None else ivf.invlists
    lists = None if own is None else faiss.downcast_InvertedLists(own)
    if ivf is None or not isinstance(lists, faiss.ArrayInvertedLists):
        for _, block in spill.blocks(x):
            index.add(block)
        return
    assigned = np.empty(len(x), dtype=np.int64)
    for start, block in spill.blocks(x):
        assigned[start : start + len(block)] = ivf.quantizer.assign(block, 1).ravel()
    sizes = np.bincount(assigned, minlength=ivf.nlist)
    for number in np.flatnonzero(sizes):
        now = int(lists.list_size(int(number)))
        lists.resize(int(number), now + int(sizes[number]))  # reserves the final length...
        lists.resize(int(number), now)  # ...and keeps it as capacity
    for start, block in spill.blocks(x):
        rows = np.ascontiguousarray(block, dtype=np.float32)
        where = np.ascontiguousarray(assigned[start : start + len(rows)])
        ivf.add_core(len(rows), faiss.swig_ptr(rows), None, faiss.swig_ptr(where))


def build_index(
    base: NDArray[np.float32], *, factory: str | None = None, n_queries: int | None = None
) -> tuple[Any, dict[str, Any]]:
    """A FAISS L2 index over ``base``: from ``factory`` (an index-factory string) or, when None,
    from the rule for ``n_queries`` queries (default: as many as base rows). Returns the index
    and a description for the report."""
    import faiss

    x = np.ascontiguousarray(base, dtype=np.float32)
    n, dims = x.shape
    chosen = factory or default_factory(n, dims, n_queries)
    if chosen == "Flat":
        return flat_index(x), {"factory": "Flat", "exact": True}
    try:
        index: Any = faiss.index_factory(dims, chosen, faiss.METRIC_L2)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "not understood"
        msg = f"index_factory='{chosen}': FAISS cannot build it ({first})"
        raise OptionError(msg) from exc
    info: dict[str, Any] = {"factory": chosen, "exact": False}
    ivf = faiss.try_extract_index_ivf(index)
    if not index.is_trained:
        lists = int(ivf.nlist) if ivf is not None else 256
        if n < lists:
            msg = f"index_factory='{chosen}': {lists} lists need more than the {n} cells"
            raise OptionError(msg)
        if ivf is not None:
            ivf.cp.niter = KMEANS_ITERATIONS
        rows = even_rows(n, TRAIN_PER_LIST * lists)
        index.train(spill.take(x, rows))
        info["trained_on"] = len(rows)
    if ivf is not None:
        ivf.nprobe = min(NPROBE, int(ivf.nlist))
        info["nprobe"] = int(ivf.nprobe)
    _add(index, x)
    log.info("FAISS: %s over %d rows", chosen, n)
    return index, info


def search(
    index: Any, queries: NDArray[np.float32], k: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Euclidean distances and rows of the ``k`` nearest base rows of each query (nearest
    first; -1 and inf where an approximate index found fewer than ``k``), in bounded chunks."""
    n = len(queries)
    dist = np.empty((n, k), dtype=np.float32)
    rows = np.empty((n, k), dtype=np.int64)
    for start, rows_in in spill.blocks(queries, SEARCH_CHUNK):
        block = np.ascontiguousarray(rows_in, dtype=np.float32)
        d2, idx = index.search(block, k)
        dist[start : start + len(block)] = np.sqrt(np.maximum(d2, 0.0))
        rows[start : start + len(block)] = idx
    dist[rows < 0] = np.inf
    return dist, rows


def nearest(
    index: Any, queries: NDArray[np.float32]
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Each query's distance to its nearest base row, and that row."""
    dist, rows = search(index, queries, 1)
    return dist[:, 0], rows[:, 0]


def knn(
    base: NDArray[np.float32], queries: NDArray[np.float32], k: int, *, exact: bool | None = None
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The ``k`` nearest ``base`` rows of each query: (distances, rows), nearest first. Exact
    when ``exact`` says so, else by the rule for this many queries."""
    if not 1 <= k <= len(base):
        msg = f"k: must be between 1 and the {len(base)} base rows, got {k}"
        raise ValueError(msg)
    factory = None if exact is None else "Flat" if exact else f"IVF{ivf_lists(len(base))},Flat"
    index, _ = build_index(base, factory=factory, n_queries=len(queries))
    return search(index, queries, k)


def nearest_distance(
    base: NDArray[np.float32], queries: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Euclidean distance from each query row to its nearest ``base`` row (exact)."""
    dist, _ = nearest(flat_index(base), queries)
    return dist


def stored_rows(index: Any, x: NDArray[np.float32], rows: NDArray[np.int64]) -> NDArray[np.float32]:
    """``x[rows]``: copied out of ``index`` where it holds the vectors as they were added (flat
    and IVF-flat indexes on the CPU), else read from ``x`` a block at a time."""
    import faiss

    found = faiss.downcast_index(index)
    if isinstance(found, faiss.IndexIVFFlat):
        if found.direct_map.no():
            found.make_direct_map()
    elif not isinstance(found, faiss.IndexFlat):
        return spill.take(x, rows)
    out: NDArray[np.float32] = found.reconstruct_batch(rows)
    return out


def write_index(index: Any, path: str | os.PathLike[str]) -> None:
    """Save ``index`` (a GPU index is copied back to the CPU first)."""
    import faiss

    if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__:
        index = faiss.index_gpu_to_cpu(index)
    faiss.write_index(index, str(path))


def read_index(path: str | os.PathLike[str]) -> Any:
    """Load an index written by :func:`write_index` (RuntimeError when FAISS cannot)."""
    import faiss

    return faiss.read_index(str(path))

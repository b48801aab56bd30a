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

import collections
import logging
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scurate import _backend as backend
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


def search_blocks(
    index: Any, queries: NDArray[np.float32], k: int, rows: int = SEARCH_CHUNK
) -> Iterator[tuple[int, NDArray[np.float32], NDArray[np.int64]]]:
    """FAISS's squared distances and rows of the ``k`` nearest base rows of each query, a block
    of ``rows`` queries at a time: ``(start, d2, labels)`` per block, in order.

    In this process, ``index.search`` on each block. On a backend whose tasks run elsewhere
    (Ray) an inverted-file index is cut into pieces of whole lists (:func:`pieces`), one per
    task slot, each held by a worker: each block's lists to probe are found here (the
    quantizer, small), every piece scans its own of them, and the pieces' answers are merged.
    FAISS keeps the ``k`` smallest by (distance, row) and so does the merge, so the answer is
    the whole index's, ties included. An index that cannot be cut (flat, behind a transform)
    is searched here."""
    run = backend.current()
    cut = None if run.in_process else pieces(index, run.slots())
    if cut is None:
        for start, block in spill.blocks(queries, rows):
            d2, labels = index.search(np.ascontiguousarray(block, dtype=np.float32), k)
            yield start, d2, labels
        return
    ivf = faiss_ivf(index)
    nprobe = int(ivf.nprobe)
    starts: collections.deque[int] = collections.deque()

    def probes() -> Iterator[tuple[int, NDArray[np.float32], int, NDArray[Any], NDArray[Any]]]:
        for start, block in spill.blocks(queries, rows):
            q = np.ascontiguousarray(block, dtype=np.float32)
            coarse_d2, lists = ivf.quantizer.search(q, nprobe)
            starts.append(start)
            yield start, q, k, lists, coarse_d2

    for found in run.over_pieces(load_piece, cut, _search_piece, probes(), label=_block_label):
        start = starts.popleft()
        d2, labels = _merge(found, min(rows, len(queries) - start), k, min(nprobe, len(found)))
        yield start, d2, labels


def _block_label(item: tuple[int, NDArray[np.float32], int, Any, Any]) -> str:
    return f"the neighbour search of rows {item[0]}..{item[0] + len(item[1]) - 1}"


def faiss_ivf(index: Any) -> Any:
    """``index`` as FAISS's inverted-file class when it is one (not behind a transform), else
    None."""
    import faiss

    found = faiss.downcast_index(index)
    return found if isinstance(found, faiss.IndexIVF) else None


def pieces(index: Any, parts: int) -> Iterator[NDArray[np.uint8]] | None:
    """``index`` cut into ``parts`` serialized pieces of whole inverted lists, runs of lists
    near-equal in rows, each with the trained quantizer and a note of the lists it holds; one
    piece made at a time as they are taken. None where it cannot be cut: not an inverted file
    with lists in memory, or fewer lists than two."""
    import faiss

    ivf = faiss_ivf(index)
    if ivf is None or ivf.nlist < 2 or ivf.ntotal >= 0xFFFFFFFF:  # rows in 32 bits (_keys)
        return None
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    if not isinstance(lists, faiss.ArrayInvertedLists):
        return None
    sizes = np.array([lists.list_size(i) for i in range(ivf.nlist)], dtype=np.int64)
    ends = np.cumsum(sizes)
    cuts = np.searchsorted(ends, np.linspace(0, ends[-1], max(1, parts) + 1)[1:-1], side="right")
    owner = np.zeros(ivf.nlist, dtype=np.int32)
    for cut in cuts:
        owner[cut:] += 1
    template = _empty_copy(ivf)

    def cut_out() -> Iterator[NDArray[np.uint8]]:
        for part in range(int(owner.max()) + 1):
            piece: Any = faiss.clone_index(template)
            for number in np.flatnonzero((owner == part) & (sizes > 0)):
                m, at = int(sizes[number]), int(number)
                ids = faiss.rev_swig_ptr(lists.get_ids(at), m)
                codes = faiss.rev_swig_ptr(lists.get_codes(at), m * lists.code_size)
                piece.invlists.add_entries(at, m, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
            piece.ntotal = int(sizes[owner == part].sum())
            held = np.flatnonzero(owner == part).astype(np.int64)
            yield np.concatenate([_header(held), serialize(piece)])
            del piece

    return cut_out()


def _empty_copy(ivf: Any) -> Any:
    """A copy of a trained inverted-file index with no rows (its lists swapped out for empty
    ones while it is cloned, so the rows are not copied)."""
    import faiss

    own, owned, ntotal = ivf.invlists, ivf.own_invlists, ivf.ntotal
    empty = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
    ivf.own_invlists = False  # so that swapping does not free the index's own lists
    ivf.replace_invlists(empty, False)
    ivf.ntotal = 0
    try:
        return faiss.clone_index(ivf)
    finally:
        ivf.replace_invlists(own, owned)
        ivf.ntotal = ntotal


def _header(held: NDArray[np.int64]) -> NDArray[np.uint8]:
    """The lists a piece holds, before its index bytes: their count, then the numbers."""
    out: NDArray[np.uint8] = np.r_[np.int64(len(held)), held].view(np.uint8)
    return out


def load_piece(piece: NDArray[np.uint8]) -> tuple[Any, NDArray[np.bool_]]:
    """A piece of :func:`pieces` loaded: its index and which of the lists it holds."""
    count = int(piece[:8].view(np.int64)[0])
    held = piece[8 : 8 * (count + 1)].view(np.int64)
    index: Any = deserialize(piece[8 * (count + 1) :])
    mine = np.zeros(int(index.nlist), dtype=np.bool_)
    mine[held] = True
    return index, mine


def _search_piece(
    held: tuple[Any, NDArray[np.bool_]],
    item: tuple[int, NDArray[np.float32], int, NDArray[np.int64], NDArray[np.float32]],
) -> tuple[NDArray[np.int64], NDArray[np.uint64]]:
    """One block searched in one piece, the probed lists it does not hold skipped: the queries
    it found anything for and their ``k`` answers as keys (:func:`_keys`). A query probes at
    most ``nprobe`` pieces, so all pieces' answers stay within ``nprobe x k`` keys a query."""
    index, mine = held
    _, queries, k, lists, coarse_d2 = item
    own = np.where((lists >= 0) & mine[np.maximum(lists, 0)], lists, -1)
    d2, labels = index.search_preassigned(queries, k, own, coarse_d2)
    have = labels[:, 0] >= 0  # FAISS puts what it found first
    return np.flatnonzero(have), _keys(d2[have], labels[have])


MISSING_D2 = np.finfo(np.float32).max  # FAISS's distance where it found fewer than k
SIGN = np.uint32(0x80000000)


def _keys(d2: NDArray[np.float32], labels: NDArray[np.int64]) -> NDArray[np.uint64]:
    """(distance, row) as one unsigned key each that sorts as FAISS ranks them: the float's
    bits made order-preserving in the high half, the row in the low half (-1, nothing found,
    as the largest)."""
    bits = np.ascontiguousarray(d2, dtype=np.float32).view(np.uint32)
    bits = np.where(bits & SIGN, ~bits, bits | SIGN)
    high = bits.astype(np.uint64) << np.uint64(32)
    out: NDArray[np.uint64] = high | labels.astype(np.uint32).astype(np.uint64)
    return out


def _from_keys(keys: NDArray[np.uint64]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The distances and rows of :func:`_keys`."""
    bits = (keys >> np.uint64(32)).astype(np.uint32)
    bits = np.where(bits & SIGN, bits & ~SIGN, ~bits)
    rows = (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)
    rows[rows == 0xFFFFFFFF] = -1
    return bits.view(np.float32), rows


def _merge(
    found: list[tuple[NDArray[np.int64], NDArray[np.uint64]]], n: int, k: int, width: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The ``k`` smallest of each of ``n`` queries' answers from the pieces (at most ``width``
    pieces answer a query), as FAISS ranks its own: by distance, then row; -1 and its largest
    float where fewer were found."""
    missing = _keys(np.full(1, MISSING_D2, dtype=np.float32), np.full(1, -1, dtype=np.int64))
    keys = np.full((n, width * k), missing[0], dtype=np.uint64)
    used = np.zeros(n, dtype=np.int64)
    for rows, part in found:
        keys[rows[:, None], used[rows][:, None] * k + np.arange(k)] = part
        used[rows] += 1
    if keys.shape[1] > k:
        keys = np.partition(keys, k - 1, axis=1)[:, :k]
    keys.sort(axis=1)
    return _from_keys(keys)


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

    faiss.write_index(_on_cpu(index), str(path))


def _on_cpu(index: Any) -> Any:
    """``index``, copied back to the CPU where it lives on a GPU."""
    import faiss

    if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__:
        return faiss.index_gpu_to_cpu(index)
    return index


def serialize(index: Any) -> NDArray[np.uint8]:
    """``index`` as bytes a task can take (a GPU index is copied back to the CPU first)."""
    import faiss

    out: NDArray[np.uint8] = faiss.serialize_index(_on_cpu(index))
    return out


def deserialize(data: NDArray[np.uint8]) -> Any:
    """The index :func:`serialize` made."""
    import faiss

    return faiss.deserialize_index(np.ascontiguousarray(data))


def nearest_in(data: NDArray[np.uint8], queries: NDArray[np.float32]) -> tuple[Any, Any]:
    """:func:`nearest` in a serialized index: a task's search, the index shipped with it."""
    return nearest(deserialize(data), queries)


def read_index(path: str | os.PathLike[str]) -> Any:
    """Load an index written by :func:`write_index` (RuntimeError when FAISS cannot)."""
    import faiss

    return faiss.read_index(str(path))

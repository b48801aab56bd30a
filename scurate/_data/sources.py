"""Reading sources: h5ad files and folders of them, obs without X, X in row chunks."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate.errors import InputError

CHUNK_ROWS = 8192  # rows of X or obsm read at a time: memory stays bounded whatever the size
T = TypeVar("T")
ROW_GAP = 32  # read_rows: candidate rows closer than this are read in one slice
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneTable:
    """A source's genes: its var_names and the string columns of its var."""

    names: NDArray[np.object_]
    columns: Mapping[str, NDArray[np.object_]]


class Source(Protocol):
    """What scurate needs of a source; a source-reader plugin returns one of these."""

    path: Path
    dataset_id: str
    n_obs: int
    n_vars: int
    obs_names: NDArray[np.object_]

    def read_obs(self) -> pd.DataFrame: ...
    def read_genes(self) -> GeneTable: ...
    def obsm_keys(self) -> list[str]: ...
    def read_obsm(self, key: str) -> NDArray[np.float32]: ...
    def iter_x(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, sp.csr_matrix]]: ...
    def x_is_counts(self) -> bool: ...

    # Optional: ``read_rows(rows) -> csr_matrix`` reads a few scattered rows of X quickly, and
    # ``row_reader(rows)`` returns a reader of subsets of those rows that finds them once
    # (:func:`read_rows` and the loader use them where present, else one pass of iter_x).


@contextlib.contextmanager
def reading(path: Path, what: str = "") -> Iterator[None]:
    """Turn a failure to read ``path`` into one line that names it (and what was being read)."""
    try:
        yield
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        part = f" {what}" if what else ""
        if not path.exists():
            msg = f"{path}: no longer exists (removed or moved while scurate was reading{part})"
        else:
            msg = f"{path}: cannot read{part} as h5ad ({type(exc).__name__}: {exc})"
        raise InputError(msg) from exc


def _read_strings(dataset: Any) -> NDArray[np.object_]:
    from anndata.io import read_elem

    values = read_elem(dataset)
    if isinstance(values, pd.Categorical):
        values = np.asarray(values.astype(str))
    return np.asarray(values, dtype=object)


class H5adSource:
    """An .h5ad file read in place with h5py: nothing is loaded until it is asked for."""

    suffix = ".h5ad"

    def __init__(self, path: Path, dataset_id: str) -> None:
        self.path = Path(path)
        self.dataset_id = dataset_id
        if self.path.stat().st_size == 0:
            msg = f"{self.path}: the file is empty"
            raise InputError(msg)
        with reading(self.path), h5py.File(self.path, "r") as f:
            for part in ("obs", "var"):
                if part not in f:
                    msg = f"{self.path}: not an h5ad file (no '{part}' group)"
                    raise InputError(msg)
            self.obs_names = _read_strings(f["obs"][f["obs"].attrs["_index"]])
            self.n_obs = len(self.obs_names)
            self.n_vars = len(f["var"][f["var"].attrs["_index"]])
            self._x_kind = self._layout(f)
        if self.n_obs == 0:
            msg = f"{self.path}: has no cells"
            raise InputError(msg)
        names = pd.Index(self.obs_names)
        if not names.is_unique:
            dup = names[names.duplicated()][0]
            count = int((names == dup).sum())
            msg = f"{self.path}: obs names are not unique ('{dup}' appears {count} times)"
            raise InputError(msg)

    @staticmethod
    def _layout(f: h5py.File) -> str | None:
        if "X" not in f:
            return None
        x = f["X"]
        if isinstance(x, h5py.Dataset):
            return "dense"
        encoding = x.attrs.get("encoding-type", "")
        if encoding in ("csr_matrix", "csc_matrix"):
            return str(encoding)[:3]
        return f"unsupported ({encoding or 'unknown encoding'})"

    def read_obs(self) -> pd.DataFrame:
        """obs as a pandas DataFrame indexed by obs name; X is not touched."""
        from anndata.io import read_elem

        with reading(self.path, "obs"), h5py.File(self.path, "r") as f:
            obs = read_elem(f["obs"])
        assert isinstance(obs, pd.DataFrame)
        return obs

    def read_genes(self) -> GeneTable:
        with reading(self.path, "var"), h5py.File(self.path, "r") as f:
            var = f["var"]
            index = var.attrs["_index"]
            names = _read_strings(var[index])
            columns = {}
            for key in var:
                if key in (index, "__categories"):
                    continue
                item = var[key]
                is_categorical = isinstance(item, h5py.Group) and "categories" in item
                if is_categorical or (isinstance(item, h5py.Dataset) and item.dtype.kind in "OSU"):
                    values = _read_strings(item)
                    if values.ndim == 1 and len(values) == len(names):
                        columns[key] = values
        return GeneTable(names, columns)

    def obsm_keys(self) -> list[str]:
        with reading(self.path, "obsm"), h5py.File(self.path, "r") as f:
            return sorted(f["obsm"]) if "obsm" in f else []

    def read_obsm(self, key: str) -> NDArray[np.float32]:
        keys = self.obsm_keys()
        if key not in keys:
            has = ", ".join(keys) if keys else "no obsm entries"
            msg = f"{self.path}: obsm has no '{key}' (has: {has})"
            raise InputError(msg)
        with reading(self.path, f"obsm['{key}']"), h5py.File(self.path, "r") as f:
            item = f["obsm"][key]
            if not isinstance(item, h5py.Dataset) or item.ndim != 2 or item.dtype.kind not in "fiu":
                msg = f"{self.path}: obsm['{key}'] is not a 2-D numeric array"
                raise InputError(msg)
            out = np.empty(item.shape, dtype=np.float32)
            for start in range(0, item.shape[0], CHUNK_ROWS):
                out[start : start + CHUNK_ROWS] = item[start : start + CHUNK_ROWS]
        return out

    def _require_x(self) -> str:
        if self._x_kind is None:
            msg = f"{self.path}: has no X (give `obsm_key` to use a stored embedding)"
            raise InputError(msg)
        if self._x_kind.startswith("unsupported"):
            msg = f"{self.path}: X is {self._x_kind}; expected a dense, CSR or CSC matrix"
            raise InputError(msg)
        return self._x_kind

    def iter_x(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, sp.csr_matrix]]:
        """Yield ``(first_row, csr_chunk)`` over X. CSR and dense X are read chunk by chunk;
        CSC X cannot be sliced by rows cheaply and is read whole once."""
        kind = self._require_x()
        with reading(self.path, "X"), h5py.File(self.path, "r") as f:
            x = f["X"]
            if kind == "csc":
                from anndata.io import sparse_dataset

                whole = sp.csr_matrix(sparse_dataset(x).to_memory())
                for start in range(0, self.n_obs, chunk_rows):
                    yield start, whole[start : start + chunk_rows]
                return
            if kind == "dense":
                for start in range(0, self.n_obs, chunk_rows):
                    yield start, sp.csr_matrix(x[start : start + chunk_rows])
                return
            indptr = x["indptr"][:].astype(np.int64)
            data, indices = x["data"], x["indices"]
            for start in range(0, self.n_obs, chunk_rows):
                stop = min(start + chunk_rows, self.n_obs)
                lo, hi = int(indptr[start]), int(indptr[stop])
                yield (
                    start,
                    sp.csr_matrix(
                        (data[lo:hi], indices[lo:hi], indptr[start : stop + 1] - lo),
                        shape=(stop - start, self.n_vars),
                    ),
                )

    def read_rows(self, rows: NDArray[np.int64]) -> sp.csr_matrix:
        """The given rows of X (sorted, distinct) as CSR, in that order.

        CSR X is read row run by row run (rows less than ``ROW_GAP`` apart share one read), so
        a few thousand scattered rows cost milliseconds rather than a pass over the file;
        dense and CSC X go through :meth:`iter_x`.
        """
        return self.row_reader(rows)(rows)

    def row_reader(self, rows: NDArray[np.int64]) -> Callable[[NDArray[np.int64]], sp.csr_matrix]:
        """A reader of any sorted subset of ``rows`` that finds their offsets in X once, for a
        caller that reads the same rows many times over (a loader, one buffer at a time)."""
        if self._require_x() != "csr":
            return functools.partial(rows_by_scan, self)
        return CsrRows(self.path, np.asarray(rows, dtype=np.int64), self.n_vars)

    def x_is_counts(self) -> bool:
        """True when the first rows of X hold only non-negative integers (raw counts)."""
        return first_rows_are_counts(self)


COUNTS_CHECK_ROWS = 2048  # rows of X looked at to decide whether a source holds raw counts


def first_rows_are_counts(source: Source, rows: int = COUNTS_CHECK_ROWS) -> bool:
    """True when the first ``rows`` rows of a source's X hold only non-negative integers."""
    seen = 0
    for _, chunk in source.iter_x(chunk_rows=rows):
        data = chunk.data
        if not (np.all(data >= 0) and np.all(data == np.round(data))):
            return False
        seen += chunk.shape[0]
        if seen >= rows:
            break
    return True


def rows_by_scan(source: Source, rows: NDArray[np.int64]) -> sp.csr_matrix:
    """The given rows (sorted, distinct) of X in one pass of ``iter_x``: any source can."""
    rows = np.asarray(rows, dtype=np.int64)
    parts = []
    for start, chunk in source.iter_x():
        lo, hi = np.searchsorted(rows, [start, start + chunk.shape[0]])
        if hi > lo:
            parts.append(chunk[rows[lo:hi] - start])
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, source.n_vars))


def read_rows(source: Source, rows: NDArray[np.int64]) -> sp.csr_matrix:
    """The given rows (sorted, distinct) of a source's X: by its ``read_rows`` where the
    reader has one, else by one pass of ``iter_x``."""
    reader = getattr(source, "read_rows", None)
    return sp.csr_matrix(reader(rows)) if reader is not None else rows_by_scan(source, rows)


class CsrRows:
    """Reads rows of a CSR h5ad's X, with the offsets of ``selected`` rows found once (16 bytes
    a selected row, rather than the whole ``indptr`` on every read). Rows less than
    ``ROW_GAP`` apart share one read of ``data`` and ``indices``."""

    def __init__(self, path: Path, selected: NDArray[np.int64], n_vars: int) -> None:
        self.path = path
        self.n_vars = n_vars
        self.rows = np.unique(selected)
        with reading(path, "X"), h5py.File(path, "r") as f:
            indptr = f["X"]["indptr"][:]
        self.starts = indptr[self.rows].astype(np.int64)
        self.ends = indptr[self.rows + 1].astype(np.int64)

    def __call__(self, rows: NDArray[np.int64]) -> sp.csr_matrix:
        """Rows (sorted, distinct, among the selected ones) as CSR, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return sp.csr_matrix((0, self.n_vars))
        at = np.searchsorted(self.rows, rows)
        starts, ends = self.starts[at], self.ends[at]
        data_parts, index_parts = [], []
        with reading(self.path, "X"), h5py.File(self.path, "r") as f:
            data_ds, indices_ds = f["X"]["data"], f["X"]["indices"]  # each lookup costs
            breaks = np.flatnonzero(np.diff(rows) > ROW_GAP) + 1
            for run in np.split(np.arange(len(rows)), breaks):
                lo, hi = int(starts[run[0]]), int(ends[run[-1]])
                data, indices = data_ds[lo:hi], indices_ds[lo:hi]
                for a, b in zip(starts[run] - lo, ends[run] - lo, strict=True):
                    data_parts.append(data[a:b])
                    index_parts.append(indices[a:b])
        ptr = np.concatenate([[0], np.cumsum(ends - starts)])
        return sp.csr_matrix(
            (np.concatenate(data_parts), np.concatenate(index_parts), ptr),
            shape=(len(rows), self.n_vars),
        )


class RowSubset:
    """Some rows of a source, seen as a source of their own: the cells of a pool that a held-out
    part was taken from (``scurate bench``). Nothing outside ``rows`` is ever read, X included,
    so no value of the other cells can reach what is computed from this one."""

    def __init__(self, base: Source, rows: NDArray[np.int64]) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0 or np.any(np.diff(rows) <= 0) or rows[0] < 0 or rows[-1] >= base.n_obs:
            msg = f"rows: expected sorted distinct rows in 0..{base.n_obs - 1}"
            raise ValueError(msg)
        self.base = base
        self.rows = rows
        self.path = base.path
        self.dataset_id = base.dataset_id
        self.n_obs = len(rows)
        self.n_vars = base.n_vars
        self.obs_names = base.obs_names[rows]
        joinids = getattr(base, "soma_joinids", None)  # a TileDB-SOMA source's, for the manifest
        if joinids is not None:
            self.soma_joinids = np.asarray(joinids)[rows]

    def read_obs(self) -> pd.DataFrame:
        return self.base.read_obs().iloc[self.rows]

    def read_genes(self) -> GeneTable:
        return self.base.read_genes()

    def obsm_keys(self) -> list[str]:
        return self.base.obsm_keys()

    def read_obsm(self, key: str) -> NDArray[np.float32]:
        return np.ascontiguousarray(self.base.read_obsm(key)[self.rows])

    def iter_x(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, sp.csr_matrix]]:
        at = 0
        for start, chunk in self.base.iter_x(chunk_rows):
            lo, hi = np.searchsorted(self.rows, [start, start + chunk.shape[0]])
            if hi > lo:
                yield at, chunk[self.rows[lo:hi] - start]
                at += int(hi - lo)

    def read_rows(self, rows: NDArray[np.int64]) -> sp.csr_matrix:
        return read_rows(self.base, self.rows[np.asarray(rows, dtype=np.int64)])

    def x_is_counts(self) -> bool:
        """True when the subset's first rows hold only non-negative integers."""
        return first_rows_are_counts(self)


@dataclass(frozen=True)
class ReadOptions:
    """How every source of a run is read; a reader takes what applies to its format.

    ``counts_layer``: where the raw counts are: ``"X"``, ``"raw"`` (``.raw.X``) or the name of
    a layer; None takes the first of X, ``.raw.X`` and ``layers["counts"]`` that holds whole
    numbers. ``obs_filter``: a value filter on obs (``"tissue_general == 'lung'"``), for
    readers that can apply one where they read (TileDB-SOMA).
    """

    counts_layer: str | None = None
    obs_filter: str | None = None


Opener = Callable[..., Source]


def _claims(opener: Opener, path: Path) -> bool:
    """Whether a reader opens the folder ``path`` as one source: its opener's ``claims(path)``
    says so (an anndata zarr store, a TileDB-SOMA experiment). A reader without ``claims``
    opens files only, by suffix."""
    claims = getattr(opener, "claims", None)
    return claims is not None and bool(claims(path))


def _why_not(readers: Mapping[str, Opener], path: Path) -> str | None:
    """Why a folder given as a source that holds none is not one: the first reader whose
    ``why_not(path)`` says (a TileDB-SOMA collection that is not an experiment)."""
    for opener in readers.values():
        why_not = getattr(opener, "why_not", None)
        if why_not is not None and (reason := why_not(path)):
            return str(reason)
    return None


def accepts_read(opener: Opener) -> bool:
    try:
        params = inspect.signature(opener).parameters
    except (TypeError, ValueError):
        return False
    return "read" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def discover(
    paths: Sequence[str | os.PathLike[str]], readers: Mapping[str, Opener]
) -> list[tuple[Path, str]]:
    """Every source under ``paths``, with the name of the reader that opens it.

    A folder a reader claims (an anndata zarr store, a TileDB-SOMA experiment) is one source;
    any other folder is searched recursively, in sorted order, for files and claimed folders.
    A file is read by the reader whose suffix its name ends with. A folder given that holds no
    source is one line: why a reader's optional ``why_not(path)`` says it is not one of its
    own (a TileDB-SOMA collection that is no experiment), else that it holds none.
    """
    suffixes = tuple(n for n in readers if n.startswith("."))

    def claimed(folder: Path) -> str | None:
        return next((n for n, o in readers.items() if _claims(o, folder)), None)

    def by_suffix(file: Path) -> str | None:
        return next((s for s in suffixes if file.name.endswith(s)), None)

    def search(folder: Path) -> Iterator[tuple[Path, str]]:
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                name = claimed(entry)
                if name is not None:
                    yield entry, name
                else:
                    yield from search(entry)
            elif entry.is_file() and (name := by_suffix(entry)) is not None:
                yield entry, name

    known = ", ".join(readers)
    found: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            name = claimed(path)
            if name is not None:
                found.append((path, name))
                continue
            inside = list(search(path))
            if not inside:
                why = _why_not(readers, path) or f"no sources in this folder (readers: {known})"
                msg = f"{path}: {why}"
                raise InputError(msg)
            found.extend(inside)
        elif path.is_file():
            name = by_suffix(path)
            if name is None:
                msg = f"{path}: not a known source format (known: {known})"
                raise InputError(msg)
            found.append((path, name))
        else:
            msg = f"{path}: no such file or folder"
            raise InputError(msg)
    if not found:
        msg = "no sources given"
        raise InputError(msg)
    return found


def open_sources(
    paths: Sequence[str | os.PathLike[str]],
    readers: Mapping[str, Opener] | None = None,
    read: ReadOptions | None = None,
    *,
    taken: set[str] | None = None,
) -> list[Source]:
    """Open files and folders of sources (see :func:`discover`).

    ``dataset_id`` is the file or folder name without the reader's suffix, made unique with
    ``-2``, ``-3``... where names repeat. ``readers`` maps a reader's name (a suffix such as
    ``.h5ad``, or any name for a reader with ``claims``) to an opener ``(path, dataset_id,
    read=ReadOptions) -> Source`` (``read`` is passed where the opener takes it); the path is
    absolute, so that a manifest names each source wherever it is read. ``taken`` holds the
    dataset ids already given (it is added to).
    """
    readers = dict(readers or {H5adSource.suffix: H5adSource})
    read = read or ReadOptions()
    sources: list[Source] = []
    taken = set() if taken is None else taken
    for given, name in discover(paths, readers):
        # stored absolute, the folder resolved (the file keeps its name: a link stays a link)
        path = given.parent.resolve() / given.name
        stem = path.name[: -len(name)] if name.startswith(".") else path.name
        dataset_id, n = stem, 1
        while dataset_id in taken:
            n += 1
            dataset_id = f"{stem}-{n}"
        taken.add(dataset_id)
        opener = readers[name]
        try:
            if accepts_read(opener):
                sources.append(opener(path, dataset_id, read=read))
            else:
                sources.append(opener(path, dataset_id))
        except FileNotFoundError as exc:
            msg = f"{path}: no such file or folder"
            raise InputError(msg) from exc
        except PermissionError as exc:
            msg = f"{path}: cannot read ({exc.strerror})"
            raise InputError(msg) from exc
    if read.obs_filter is not None:
        _check_obs_filter(sources, read.obs_filter)
    return sources


def _check_obs_filter(sources: Sequence[Source], obs_filter: str) -> None:
    """An obs filter is applied by the readers that can (a source that did sets its
    ``obs_filter``): one line when none of the sources can, a log line naming those that
    cannot when some can (all their cells are read)."""
    unfiltered = [s for s in sources if getattr(s, "obs_filter", None) != obs_filter]
    if not unfiltered:
        return
    names = ", ".join(str(s.path) for s in unfiltered[:3])
    more = f" and {len(unfiltered) - 3} more" if len(unfiltered) > 3 else ""
    if len(unfiltered) == len(sources):
        msg = (
            f"obs_filter={obs_filter!r} applies to TileDB-SOMA experiments only; no source "
            f"given is one ({names}{more})"
        )
        raise InputError(msg)
    log.warning(
        "obs_filter=%r is not applied to %d sources that cannot filter obs (%s%s): "
        "all their cells are read",
        obs_filter,
        len(unfiltered),
        names,
        more,
    )


def prefetched(chunks: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``chunks`` with the next ones read in a background thread, so reading a file
    overlaps with native work on the current chunk (which releases the GIL). Errors raised
    while reading come out here, in the caller's thread."""
    import queue
    import threading

    items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in chunks:
                if stop.is_set():
                    return
                items.put(("item", item))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            items.put(("error", exc))
            return
        items.put(("done", None))

    thread = threading.Thread(target=produce, daemon=True, name="scurate-prefetch")
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)

"""Sources: what scurate needs of one (:class:`Source`), finding them in files and folders, and
opening each with its reader. The AnnData readers (h5ad, zarr) are in
:mod:`scurate._data.anndata_store`."""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate._plugins.registry import calling
from scurate.errors import InputError, PluginError

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
    obs_names: NDArray[Any]  # strings: object, or numpy's variable-width StringDType

    def read_obs(self) -> pd.DataFrame: ...
    def read_genes(self) -> GeneTable: ...
    def obsm_keys(self) -> list[str]: ...
    def read_obsm(self, key: str) -> NDArray[np.float32]: ...
    def iter_x(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, sp.csr_matrix]]: ...
    def x_is_counts(self) -> bool: ...

    # X here means the matrix of the cells' counts, wherever the source keeps them (for AnnData:
    # X, .raw.X or a layer; see scurate._data.anndata_store).
    # Optional: ``read_rows(rows) -> csr_matrix`` reads a few scattered rows of X quickly, and
    # ``row_reader(rows)`` returns a reader of subsets of those rows that finds them once
    # (:func:`read_rows` and the loader use them where present, else one pass of iter_x);
    # ``counts_from`` names the matrix read as counts (None where X holds normalized values;
    # see :func:`counts_from`); ``uns_scalars() -> dict[str, str]`` gives the string scalars of
    # the source's uns (a harmonizer reads CELLxGENE's organism there).


def compact_strings(values: NDArray[Any]) -> NDArray[Any]:
    """``values`` (an array of strings) in numpy's variable-width ``StringDType`` where numpy
    has it (2.0 and later): about 16-40 bytes a string where an object array of Python strings
    takes 60-90, so ten million obs names hold 0.2-0.4 GB instead of 0.7 GB. Else, or where a
    value is not a string, as they are."""
    string_dtype = getattr(np.dtypes, "StringDType", None)
    if string_dtype is None:
        return values
    try:
        return np.asarray(values, dtype=string_dtype())
    except (TypeError, ValueError):
        return values


@contextlib.contextmanager
def reading(
    path: Path, what: str = "", *, fmt: str = "h5ad", errors: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
    """Turn a failure to read ``path`` into one line that names it (and what was being read, in
    which format); ``errors`` are further exception types the format's reader raises."""
    caught: tuple[type[BaseException], ...] = (
        OSError,
        KeyError,
        ValueError,
        TypeError,
        IndexError,  # a file replaced by a smaller one while it is read
        *errors,
    )
    try:
        yield
    except InputError:
        raise
    except caught as exc:
        part = f" {what}" if what else ""
        if not path.exists():
            msg = f"{path}: no longer exists (removed or moved while scurate was reading{part})"
        else:
            msg = f"{path}: cannot read{part} as {fmt} ({type(exc).__name__}: {exc})"
        raise InputError(msg) from exc


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


def counts_from(source: Source) -> str | None:
    """Which matrix of ``source`` is read as its counts: its ``counts_from`` where the reader
    says (``"X"``, ``"raw"``, ``"layers['counts']"``), else ``"X"`` when X holds counts; None
    where X is read as normalized values."""
    if hasattr(source, "counts_from"):
        named = source.counts_from
        return None if named is None else str(named)
    return "X" if source.x_is_counts() else None


def require_obsm(where: str, keys: Sequence[str], key: str) -> None:
    """One line when ``key`` is not among a source's obsm ``keys`` (``where`` names it)."""
    if key not in keys:
        has = ", ".join(keys) if keys else "no obsm entries"
        msg = f"{where}: obsm has no '{key}' (has: {has})"
        raise InputError(msg)


def finite_chunks(
    source: Source, chunks: Iterator[tuple[int, sp.csr_matrix]]
) -> Iterator[tuple[int, sp.csr_matrix]]:
    """``chunks`` of a source's matrix, checked as they stream: a NaN or inf stops the run with
    one line naming the file, the matrix, the row and the cell."""
    for start, chunk in chunks:
        data = chunk.data
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            first = int(np.flatnonzero(~np.isfinite(data))[0])
            row = start + int(np.searchsorted(chunk.indptr, first, side="right")) - 1
            what = counts_from(source) or "X"
            msg = f"{source.path}: {what} row {row} (cell '{source.obs_names[row]}') has NaN or inf"
            raise InputError(msg)
        yield start, chunk


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

    @property
    def counts_from(self) -> str | None:
        """The matrix the base reads (``x_from``: X, raw or a layer) where the subset's own
        rows hold counts: the base chose it on its first rows, held-out ones among them, so
        their values must not decide whether the subset is counts."""
        return str(getattr(self.base, "x_from", "X")) if self.x_is_counts() else None


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


def takes(opener: Opener, keyword: str, *, any_keyword: bool = False) -> bool:
    """Whether ``opener`` takes ``keyword`` by name (or any keyword, with ``any_keyword``,
    where it has ``**kwargs``)."""
    try:
        params = inspect.signature(opener).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or (
        any_keyword and any(p.kind is p.VAR_KEYWORD for p in params.values())
    )


def accepts_read(opener: Opener) -> bool:
    """Whether ``opener`` takes ``read=`` (see :class:`ReadOptions`)."""
    return takes(opener, "read", any_keyword=True)


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
    check_filter: bool = True,
) -> list[Source]:
    """Open files and folders of sources (see :func:`discover`).

    ``dataset_id`` is the file or folder name without the reader's suffix, made unique with
    ``-2``, ``-3``... where names repeat. ``readers`` maps a reader's name (a suffix such as
    ``.h5ad``, or any name for a reader with ``claims``) to an opener ``(path, dataset_id,
    read=ReadOptions) -> Source`` (``read`` is passed where the opener takes it); the path is
    absolute, so that a manifest names each source wherever it is read. ``taken`` holds the
    dataset ids already given (it is added to). ``check_filter=False`` leaves the check of
    ``read.obs_filter`` (:func:`check_obs_filter`) to a caller that opens more sources.
    """
    if not readers:
        from scurate._data.anndata_store import H5adSource

        readers = {H5adSource.suffix: H5adSource}
    readers = dict(readers)
    read = read or ReadOptions()
    sources: list[Source] = []
    taken = set() if taken is None else taken
    for given, name in discover(paths, readers):
        # stored absolute, the folder resolved (the file keeps its name: a link stays a link)
        path = given.parent.resolve() / given.name
        # a folder a reader claimed by content may not end with its suffix
        suffixed = name.startswith(".") and path.name.endswith(name) and path.name != name
        stem = path.name[: -len(name)] if suffixed else path.name
        dataset_id, n = stem, 1
        while dataset_id in taken:
            n += 1
            dataset_id = f"{stem}-{n}"
        taken.add(dataset_id)
        opener = readers[name]
        who = f"source reader '{name}' on {path}"
        with calling(who):  # a reader's bug is named, in a line
            try:
                if accepts_read(opener):
                    opened = opener(path, dataset_id, read=read)
                else:
                    opened = opener(path, dataset_id)
            except FileNotFoundError as exc:
                msg = f"{path}: no such file or folder"
                raise InputError(msg) from exc
            except PermissionError as exc:
                msg = f"{path}: cannot read ({exc.strerror})"
                raise InputError(msg) from exc
        sources.append(checked_source(opened, who))
    if read.obs_filter is not None and check_filter:
        check_obs_filter(sources, read.obs_filter)
    return sources


SAMPLE_BLOCKS = 64  # blocks of a source file hashed for its fingerprint
SAMPLE_BLOCK = 1 << 16


def fingerprint(path: Path) -> dict[str, Any]:
    """What identifies a source's content cheaply, wherever it is copied: its size and a
    SHA-256 of 64 evenly spaced 64 KiB blocks (the whole file below 4 MiB); for a folder (a
    zarr store, a SOMA experiment), the names and sizes of its files."""
    import hashlib

    sha = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            sha.update(f"{f.relative_to(path)}\0{f.stat().st_size}\n".encode())
        return {"bytes": sum(f.stat().st_size for f in files), "sample_sha256": sha.hexdigest()}
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= SAMPLE_BLOCKS * SAMPLE_BLOCK:
            sha.update(handle.read())
        else:
            step = (size - SAMPLE_BLOCK) // (SAMPLE_BLOCKS - 1)
            for k in range(SAMPLE_BLOCKS):
                handle.seek(k * step)
                sha.update(handle.read(SAMPLE_BLOCK))
    return {"bytes": size, "sample_sha256": sha.hexdigest()}


SOURCE_PARTS = ("n_obs", "n_vars", "obs_names", "read_obs", "read_genes", "iter_x", "x_is_counts")


def checked_source(opened: Any, who: str) -> Source:
    """What a reader returned, if it is a :class:`Source`; else one line naming the reader."""
    missing = [part for part in SOURCE_PARTS if not hasattr(opened, part)]
    if missing:
        msg = (
            f"{who} returned {type(opened).__name__}, not a source (it has no {', '.join(missing)})"
        )
        raise PluginError(msg)
    n_obs = opened.n_obs
    if isinstance(n_obs, bool) or not isinstance(n_obs, (int, np.integer)):
        msg = f"{who} returned a source whose n_obs is {n_obs!r}, not a number of cells"
        raise PluginError(msg)
    if len(opened.obs_names) != n_obs:
        msg = f"{who} returned a source with {len(opened.obs_names)} obs names for {n_obs} cells"
        raise PluginError(msg)
    source: Source = opened
    return source


def check_obs_filter(sources: Sequence[Source], obs_filter: str) -> None:
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

"""AnnData read in place: ``.h5ad`` files (h5py) and zarr folders written by
``AnnData.write_zarr`` (zarr), by one reader over a small adapter of the two stores.

Nothing is loaded until it is asked for: obs without any matrix, the genes, obsm and the counts
in row chunks of ``CHUNK_ROWS`` (a CSC matrix cannot be sliced by rows and is read whole once).

Counts wherever they are. Which matrix holds a source's raw counts is decided once, when it is
opened: ``ReadOptions.counts_layer`` names it (``"X"``, ``"raw"`` for ``.raw.X``, or a layer's
name), or else it is the first of X, ``.raw.X`` and ``layers["counts"]`` whose first stored
values are whole non-negative numbers. Where none is, X is read as normalized values (the
embedding uses it as it is; exact duplicates are not searched in it). ``iter_x``, ``read_rows``,
``row_reader``, ``read_genes``, ``n_vars`` and ``x_is_counts`` then all speak of the chosen
matrix, and ``counts_from`` says which it is (``"X"``, ``"raw"``, ``"layers['NAME']"``, or None
for normalized X; ``x_from`` names the matrix read either way). The genes of ``.raw.X`` are
those of ``raw/var``: scanpy leaves raw with more genes than X once X is subset, which is fine;
a raw that lacks some of X's genes is not the raw of this X and stops the run. A named matrix
that is absent, or that holds values other than whole non-negative numbers, is one line naming
the file and the option. ``counts_layer="X"`` reads X as it is, whatever it holds (whole
numbers as counts, anything else as normalized).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate._data.sources import (
    CHUNK_ROWS,
    COUNTS_CHECK_ROWS,
    ROW_GAP,
    GeneTable,
    ReadOptions,
    compact_strings,
    reading,
    require_obsm,
    rows_by_scan,
)
from scurate.errors import InputError

COUNTS_CHECK_VALUES = 1 << 22  # at most this many stored values looked at to tell counts
DEFAULT_COUNTS = ("X", "raw", "counts")  # where counts are looked for, in this order


@dataclass(frozen=True)
class Spans:
    """Pieces of a 1-D array to read, ``[starts[i], ends[i])`` in order, and runs of them (their
    indices) that lie close enough together to read in one slice."""

    starts: NDArray[np.int64]
    ends: NDArray[np.int64]
    runs: list[NDArray[np.intp]]


class Store:
    """What differs between an h5ad file and a zarr folder: how the root group is opened, what
    is an array and what a group, the format's name and the errors a damaged store raises."""

    kind = ""  # the format, as errors name it ("cannot read X as zarr")
    what = ""  # what a store of this kind is, as errors name it
    errors: tuple[type[BaseException], ...] = ()

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def is_array(self, item: Any) -> bool:
        raise NotImplementedError

    def is_group(self, item: Any) -> bool:
        raise NotImplementedError

    def read_spans(self, array: Any, spans: Spans) -> NDArray[Any]:
        """``array[starts[i]:ends[i]]`` for every span, concatenated. Each run (indices of
        spans that lie close together) is read in one slice, from its first start to its last
        end: an h5py read costs per call far more than per value."""
        starts, ends = spans.starts, spans.ends
        parts: list[NDArray[Any]] = []
        for run in spans.runs:
            lo, hi = int(starts[run[0]]), int(ends[run[-1]])
            block = array[lo:hi]
            parts.extend(block[a:b] for a, b in zip(starts[run] - lo, ends[run] - lo, strict=True))
        return np.concatenate(parts) if parts else np.asarray(array[0:0])


class H5Store(Store):
    kind = "h5ad"
    what = "an h5ad file"

    def open(self) -> contextlib.AbstractContextManager[Any]:
        file: contextlib.AbstractContextManager[Any] = h5py.File(self.path, "r")
        return file

    def is_array(self, item: Any) -> bool:
        return isinstance(item, h5py.Dataset)

    def is_group(self, item: Any) -> bool:
        return isinstance(item, h5py.Group)


class ZarrStore(Store):
    kind = "zarr"
    what = "an AnnData zarr store"
    errors = (RuntimeError,)  # a damaged chunk fails to decompress

    @contextlib.contextmanager
    def open(self) -> Iterator[Any]:
        import zarr

        yield zarr.open_group(self.path, mode="r")

    def is_array(self, item: Any) -> bool:
        import zarr

        return isinstance(item, zarr.Array)

    def is_group(self, item: Any) -> bool:
        import zarr

        return isinstance(item, zarr.Group)

    def read_spans(self, array: Any, spans: Spans) -> NDArray[Any]:
        """All spans in one coordinate selection: zarr then decompresses each chunk once, where
        a slice per run decompresses a chunk per run (2,000 scattered rows: 30 ms, not 2 s)."""
        lengths = spans.ends - spans.starts
        total = int(lengths.sum())
        if total == 0:
            return np.asarray(array[0:0])
        shift = np.repeat(np.cumsum(lengths) - lengths - spans.starts, lengths)
        return np.asarray(array.get_coordinate_selection(np.arange(total) - shift))


def _read_strings(item: Any) -> NDArray[np.object_]:
    from anndata.io import read_elem

    values = read_elem(item)
    if isinstance(values, pd.Categorical):
        values = np.asarray(values.astype(str))
    return np.asarray(values, dtype=object)


def _index(group: Any) -> NDArray[np.object_]:
    """A dataframe group's index (obs names, gene names)."""
    return _read_strings(group[group.attrs["_index"]])


@dataclass(frozen=True)
class Matrix:
    """One cells x genes matrix of an AnnData store: X, ``.raw.X`` or a layer."""

    key: str  # where it is in the store: "X", "raw/X", "layers/NAME"
    label: str  # how report.json names it: "X", "raw", "layers['NAME']"
    genes: str  # the dataframe of its genes: "var", or "raw/var"
    layout: str | None  # "dense", "csr", "csc" or "unsupported (...)"; None where absent

    @property
    def readable(self) -> bool:
        return self.layout in ("dense", "csr", "csc")


def _matrix_at(f: Any, store: Store, name: str) -> Matrix:
    """X (``"X"``), ``.raw.X`` (``"raw"``) or the layer ``name``, as the store holds it."""
    if name == "X":
        key, label, genes = "X", "X", "var"
    elif name == "raw":
        key, label, genes = "raw/X", "raw", "raw/var"
    else:
        key, label, genes = f"layers/{name}", f"layers['{name}']", "var"
    if key not in f:
        return Matrix(key, label, genes, None)
    item = f[key]
    if store.is_array(item):
        return Matrix(key, label, genes, "dense")
    encoding = str(item.attrs.get("encoding-type", ""))
    if encoding in ("csr_matrix", "csc_matrix"):
        return Matrix(key, label, genes, encoding[:3])
    return Matrix(key, label, genes, f"unsupported ({encoding or 'unknown encoding'})")


def _first_bad_value(f: Any, matrix: Matrix) -> float | None:
    """The first of the matrix's leading stored values that is not a whole non-negative number
    (None when all are): the values of its first ``COUNTS_CHECK_ROWS`` rows (of a CSC matrix,
    of its first columns), at most ``COUNTS_CHECK_VALUES`` of them."""
    item = f[matrix.key]
    if matrix.layout == "dense":
        width = item.shape[1] if len(item.shape) > 1 else 1
        rows = max(1, min(COUNTS_CHECK_ROWS, COUNTS_CHECK_VALUES // max(width, 1)))
        values = np.asarray(item[:rows]).ravel()
    else:
        indptr = item["indptr"]
        stop = int(np.asarray(indptr[min(COUNTS_CHECK_ROWS, indptr.shape[0] - 1)]))
        values = np.asarray(item["data"][: min(stop, COUNTS_CHECK_VALUES)])
    if values.dtype.kind in "iub":
        bad = np.flatnonzero(values < 0)
    else:
        bad = np.flatnonzero(~((values >= 0) & (values == np.round(values))))
    return None if len(bad) == 0 else float(values[bad[0]])


class AnnDataSource:
    """An AnnData store read in place, through its :class:`Store`; see the module doc."""

    suffix: ClassVar[str] = ""
    store_type: ClassVar[type[Store]] = Store

    def __init__(self, path: Path, dataset_id: str, read: ReadOptions | None = None) -> None:
        self.path = Path(path)
        self.dataset_id = dataset_id
        self.store = self.store_type(self.path)
        self._check_present()
        with self._reading(), self.store.open() as f:
            for part in ("obs", "var"):
                if part not in f:
                    msg = f"{self.path}: not {self.store.what} (no '{part}' group)"
                    raise InputError(msg)
            obs_names = _index(f["obs"])
            self.n_obs = len(obs_names)
            if self.n_obs == 0:
                msg = f"{self.path}: has no cells"
                raise InputError(msg)
            names = pd.Index(obs_names)
            if not names.is_unique:
                dup = names[names.duplicated()][0]
                count = int((names == dup).sum())
                msg = f"{self.path}: obs names are not unique ('{dup}' appears {count} times)"
                raise InputError(msg)
            del names
            self.obs_names = compact_strings(obs_names)
            self._matrix, self.counts_from = self._choose_counts(f, (read or ReadOptions()))
            self.n_vars = len(_index(f[self._matrix.genes]))
        self.x_from = self._matrix.label  # the matrix read as X, counts or not

    def _check_present(self) -> None:
        """A check of the path before it is opened (an empty h5ad file)."""

    def _reading(self, what: str = "") -> contextlib.AbstractContextManager[None]:
        return reading(self.path, what, fmt=self.store.kind, errors=self.store.errors)

    # -------------------------------------------------------------- where the counts are

    def _choose_counts(self, f: Any, read: ReadOptions) -> tuple[Matrix, str | None]:
        """The matrix read as counts, and its label (None where X is read as normalized)."""
        wanted = read.counts_layer
        x = _matrix_at(f, self.store, "X")
        if wanted == "X":
            return x, "X" if x.readable and self._bad_value(f, x) is None else None
        if wanted is None:
            for name in DEFAULT_COUNTS:
                matrix = _matrix_at(f, self.store, name)
                if matrix.readable and self._bad_value(f, matrix) is None:
                    self._check_genes(f, matrix)
                    return matrix, matrix.label
            return x, None
        matrix = _matrix_at(f, self.store, wanted)
        where = f"{self.path}: counts_layer='{wanted}'"
        if matrix.layout is None:
            msg = f"{where}: the file has no .raw" if wanted == "raw" else self._no_layer(f, where)
            raise InputError(msg)
        if not matrix.readable:
            msg = f"{where}: {matrix.label} is {matrix.layout}; expected a dense, CSR or CSC matrix"
            raise InputError(msg)
        bad = self._bad_value(f, matrix)
        if bad is not None:
            msg = f"{where}: {matrix.label} holds {bad:g}, not whole numbers (not raw counts)"
            raise InputError(msg)
        self._check_genes(f, matrix)
        return matrix, matrix.label

    def _bad_value(self, f: Any, matrix: Matrix) -> float | None:
        with self._reading(matrix.key):
            return _first_bad_value(f, matrix)

    def _no_layer(self, f: Any, where: str) -> str:
        layers = sorted(f["layers"].keys()) if "layers" in f else []
        return f"{where}: no such layer (layers: {', '.join(layers) if layers else 'none'})"

    def _check_genes(self, f: Any, matrix: Matrix) -> None:
        """``.raw`` must hold every gene of X (it may hold more)."""
        if matrix.genes == "var":
            return
        x_genes, raw_genes = _index(f["var"]), _index(f[matrix.genes])
        missing = x_genes[~pd.Index(x_genes).isin(raw_genes)]
        if len(missing):
            msg = (
                f"{self.path}: .raw lacks {len(missing)} of X's {len(x_genes)} genes (such as"
                f" '{missing[0]}'), so it is not the raw counts of this X; give `counts_layer`"
                " to read another matrix"
            )
            raise InputError(msg)

    def x_is_counts(self) -> bool:
        """True when the matrix read holds raw counts (see :attr:`counts_from`)."""
        return self.counts_from is not None

    # -------------------------------------------------------------- obs, genes, obsm, uns

    def read_obs(self) -> pd.DataFrame:
        """obs as a pandas DataFrame indexed by obs name; no matrix is touched."""
        from anndata.io import read_elem

        with self._reading("obs"), self.store.open() as f:
            obs = read_elem(f["obs"])
        assert isinstance(obs, pd.DataFrame)
        return obs

    def read_genes(self) -> GeneTable:
        """The genes of the matrix read: var's, or raw/var's for ``.raw.X``."""
        with self._reading(self._matrix.genes), self.store.open() as f:
            var = f[self._matrix.genes]
            index = var.attrs["_index"]
            names = _read_strings(var[index])
            columns = {}
            for key in var:
                if key in (index, "__categories"):
                    continue
                item = var[key]
                is_categorical = self.store.is_group(item) and "categories" in item
                is_text = self.store.is_array(item) and item.dtype.kind in "OSUT"
                if self.store.is_array(item) and item.dtype.kind == "b":  # a flag: mt, mito
                    flags = np.asarray(item[...])
                    if flags.shape == names.shape:
                        columns[key] = np.where(flags, "True", "False").astype(object)
                elif is_categorical or is_text:
                    values = _read_strings(item)
                    if values.ndim == 1 and len(values) == len(names):
                        columns[key] = values
        return GeneTable(names, columns)

    def obsm_keys(self) -> list[str]:
        with self._reading("obsm"), self.store.open() as f:
            return sorted(f["obsm"].keys()) if "obsm" in f else []

    def read_obsm(self, key: str) -> NDArray[np.float32]:
        require_obsm(f"{self.path}", self.obsm_keys(), key)
        with self._reading(f"obsm['{key}']"), self.store.open() as f:
            item = f["obsm"][key]
            if not self.store.is_array(item) or item.ndim != 2 or item.dtype.kind not in "fiu":
                msg = f"{self.path}: obsm['{key}'] is not a 2-D numeric array"
                raise InputError(msg)
            if item.shape[0] != self.n_obs:
                msg = (
                    f"{self.path}: obsm['{key}'] has {item.shape[0]} rows but obs has "
                    f"{self.n_obs} cells"
                )
                raise InputError(msg)
            out = np.empty(item.shape, dtype=np.float32)
            for start in range(0, item.shape[0], CHUNK_ROWS):
                out[start : start + CHUNK_ROWS] = item[start : start + CHUNK_ROWS]
        return out

    def uns_scalars(self) -> dict[str, str]:
        """The string scalars of uns (``organism_ontology_term_id``...); empty where none."""
        out: dict[str, str] = {}
        try:
            with self.store.open() as f:
                uns = f.get("uns")
                if uns is None or not self.store.is_group(uns):
                    return {}
                for key in uns:
                    item = uns[key]
                    if self.store.is_array(item) and item.shape == ():
                        value = item[()]
                        if isinstance(value, np.ndarray):
                            value = value.item()
                        if isinstance(value, bytes):
                            value = value.decode("utf-8", "replace")
                        if isinstance(value, str):
                            out[key] = value
        except (OSError, KeyError, ValueError):
            return {}
        except self.store.errors:
            return {}
        return out

    # -------------------------------------------------------------- the counts, by rows

    def _require_x(self) -> Matrix:
        matrix = self._matrix
        if matrix.layout is None:
            msg = f"{self.path}: has no X (give `obsm_key` to use a stored embedding)"
            raise InputError(msg)
        if not matrix.readable:
            msg = f"{self.path}: {matrix.label} is {matrix.layout}; expected a dense, CSR or CSC"
            raise InputError(msg + " matrix")
        return matrix

    def iter_x(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, sp.csr_matrix]]:
        """Yield ``(first_row, csr_chunk)`` over the counts matrix. CSR and dense are read chunk
        by chunk; CSC cannot be sliced by rows cheaply and is read whole once."""
        matrix = self._require_x()
        with self._reading(matrix.key), self.store.open() as f:
            x = f[matrix.key]
            if matrix.layout == "csc":
                from anndata.io import sparse_dataset

                whole = sp.csr_matrix(sparse_dataset(x).to_memory())
                self._same_rows(matrix, whole.shape[0])
                for start in range(0, self.n_obs, chunk_rows):
                    yield start, whole[start : start + chunk_rows]
                return
            if matrix.layout == "dense":
                self._same_rows(matrix, x.shape[0])
                for start in range(0, self.n_obs, chunk_rows):
                    yield start, sp.csr_matrix(x[start : start + chunk_rows])
                return
            indptr = np.asarray(x["indptr"][:]).astype(np.int64)
            self._same_rows(matrix, len(indptr) - 1)
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

    def _same_rows(self, matrix: Matrix, rows: int) -> None:
        """The matrix read has as many rows as obs had when the source was opened."""
        if rows != self.n_obs:
            msg = (
                f"{self.path}: {matrix.label} holds {rows} rows but obs has {self.n_obs} cells "
                "(the file changed while scurate read it, or is damaged)"
            )
            raise InputError(msg)

    def read_rows(self, rows: NDArray[np.int64]) -> sp.csr_matrix:
        """The given rows of the counts matrix (sorted, distinct) as CSR, in that order.

        CSR is read row run by row run (rows less than ``ROW_GAP`` apart share one read), so a
        few thousand scattered rows cost milliseconds rather than a pass over the store; dense
        and CSC go through :meth:`iter_x`.
        """
        return self.row_reader(rows)(rows)

    def row_reader(self, rows: NDArray[np.int64]) -> Callable[[NDArray[np.int64]], sp.csr_matrix]:
        """A reader of any sorted subset of ``rows`` that finds their offsets once, for a caller
        that reads the same rows many times over (a loader, one buffer at a time)."""
        if self._require_x().layout != "csr":
            return functools.partial(rows_by_scan, self)
        return CsrRows(self, np.asarray(rows, dtype=np.int64))


class CsrRows:
    """Reads rows of a source's CSR counts matrix, with the offsets of ``selected`` rows found
    once (16 bytes a selected row, rather than the whole ``indptr`` on every read). Rows less
    than ``ROW_GAP`` apart share one read of ``data`` and ``indices`` where the store reads by
    slices (h5py); zarr reads all of them in one selection."""

    def __init__(self, source: AnnDataSource, selected: NDArray[np.int64]) -> None:
        self.source = source
        self.key = source._matrix.key
        self.n_vars = source.n_vars
        self.rows = np.unique(selected)
        with source._reading(self.key), source.store.open() as f:
            indptr = np.asarray(f[self.key]["indptr"][:])
        self.starts = indptr[self.rows].astype(np.int64)
        self.ends = indptr[self.rows + 1].astype(np.int64)

    def __call__(self, rows: NDArray[np.int64]) -> sp.csr_matrix:
        """Rows (sorted, distinct, among the selected ones) as CSR, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return sp.csr_matrix((0, self.n_vars))
        at = np.searchsorted(self.rows, rows)
        starts, ends = self.starts[at], self.ends[at]
        runs = np.split(np.arange(len(rows)), np.flatnonzero(np.diff(rows) > ROW_GAP) + 1)
        spans = Spans(starts, ends, runs)
        store = self.source.store
        with self.source._reading(self.key), store.open() as f:
            x = f[self.key]
            data = store.read_spans(x["data"], spans)
            indices = store.read_spans(x["indices"], spans)
        ptr = np.concatenate([[0], np.cumsum(ends - starts)])
        return sp.csr_matrix((data, indices, ptr), shape=(len(rows), self.n_vars))


class H5adSource(AnnDataSource):
    """An .h5ad file read in place with h5py: nothing is loaded until it is asked for."""

    suffix = ".h5ad"
    store_type = H5Store

    def _check_present(self) -> None:
        if self.path.stat().st_size == 0:
            msg = f"{self.path}: the file is empty"
            raise InputError(msg)


class ZarrSource(AnnDataSource):
    """A zarr folder written by ``AnnData.write_zarr``, read in place with zarr."""

    suffix = ".zarr"
    store_type = ZarrStore

    @staticmethod
    def claims(path: Path) -> bool:
        """A folder is an AnnData zarr store when its name ends with ``.zarr`` or its root
        attributes say ``encoding-type: anndata`` (zarr format 2 or 3)."""
        return path.name.endswith(ZarrSource.suffix) or _root_encoding(path) == "anndata"

    def _check_present(self) -> None:
        if not self.path.is_dir():
            msg = f"{self.path}: not a zarr store (a zarr store is a folder)"
            raise InputError(msg)


def _root_encoding(folder: Path) -> str | None:
    """The ``encoding-type`` attribute of a zarr group at ``folder`` (None where it is none)."""
    for name, inside in ((".zattrs", None), ("zarr.json", "attributes")):
        try:
            attrs = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        if inside is not None:
            attrs = attrs.get(inside, {}) if isinstance(attrs, dict) else {}
        if isinstance(attrs, dict):
            value = attrs.get("encoding-type")
            return None if value is None else str(value)
    return None

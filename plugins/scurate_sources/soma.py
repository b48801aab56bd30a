"""TileDB-SOMA experiments, laid out as CELLxGENE Census is, read as scurate sources.

An experiment is a folder: ``obs`` (a DataFrame with ``soma_joinid`` and the cells' metadata)
and ``ms[measurement]`` with ``var`` (``feature_id`` Ensembl ids, ``feature_name`` symbols)
and ``X[layer]`` (a sparse matrix over obs and var joinids; Census keeps counts in
``X["raw"]``). The cells of a source are those ``read.obs_filter`` keeps (a TileDB value
filter, applied where obs is read), in ascending ``soma_joinid``; ``soma_joinids`` holds them,
so that the manifest can name each cell as Census does. X is read one chunk of joinids at a
time and never whole.

tiledbsoma is imported only when an experiment is opened: without it the reader still claims
experiments (from the TileDB markers on disk) and says in one line how to install it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray
from scurate.plugin import GeneTable, InputError, ReadOptions

CHUNK_ROWS = 8192  # cells of X or obsm read at a time
COUNTS_CHECK_ROWS = 2048  # cells looked at to decide whether a layer holds raw counts
MEASUREMENT = "RNA"  # Census's measurement; an experiment with one measurement uses that one
COUNTS_LAYER = "raw"  # Census's counts layer; without it, the only layer or the first of counts
ID_COLUMNS = ("obs_id", "cell_id")  # obs names, where unique (from_anndata writes obs_id)
VAR_ID_COLUMNS = ("var_id", "feature_id")  # var names (from_anndata writes var_id)
INSTALL = "pip install 'scurate[soma]'"


def _is_group(path: Path) -> bool:
    return (path / "__tiledb_group.tdb").is_file() or (path / "__group").is_dir()


def _is_array(path: Path) -> bool:
    return (path / "__schema").is_dir() or (path / "__array_schema.tdb").is_file()


def is_experiment(path: Path) -> bool:
    """Whether ``path`` is a folder that holds a TileDB-SOMA experiment, from the markers
    TileDB leaves on disk (a group with ``obs`` and ``ms`` members); no cell is read."""
    path = Path(path)
    return _is_group(path) and (path / "obs").is_dir() and (path / "ms").is_dir()


def why_not_experiment(path: Path) -> str | None:
    """Why a folder given as a source that TileDB wrote is not an experiment; None for a folder
    TileDB did not write."""
    if not (_is_group(path) or _is_array(path)):
        return None
    kind = "a TileDB group" if _is_group(path) else "a TileDB array"
    with contextlib.suppress(Exception):  # without tiledbsoma, the plain words are enough
        soma = _tiledbsoma(path)
        with soma.open(str(path)) as found:
            kind = f"a TileDB-SOMA {type(found).__name__}"
    return (
        f"{kind}, not a TileDB-SOMA Experiment (a folder with obs and ms, as CELLxGENE Census "
        "keeps each organism)"
    )


def _tiledbsoma(path: Path) -> Any:
    try:
        import tiledbsoma
    except ImportError as exc:
        msg = f"{path}: a TileDB-SOMA experiment; reading it needs tiledbsoma ({INSTALL})"
        raise InputError(msg) from exc
    return tiledbsoma


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first.removeprefix("SOMAError: ").strip()


@contextlib.contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """A failure to read ``what`` of the experiment at ``path`` as one line that names both."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        soma = _tiledbsoma(path)
        if not isinstance(exc, (soma.SOMAError, OSError, KeyError, ValueError, TypeError)):
            raise
        if not path.exists():
            msg = f"{path}: no longer exists (removed or moved while scurate was reading {what})"
        else:
            msg = f"{path}: cannot read {what} of the TileDB-SOMA experiment ({_first_line(exc)})"
        raise InputError(msg) from exc


def _column(table: Any, name: str) -> NDArray[Any]:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False))


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _csr(
    row: NDArray[np.int64], col: NDArray[np.int64], value: NDArray[Any], n_rows: int, n_cols: int
) -> sp.csr_matrix:
    """CSR from coordinates as TileDB returns them (row-major where the layer was written so:
    then no sort, and no COO step)."""
    if len(row) > 1 and np.any(row[1:] < row[:-1]):
        order = np.argsort(row, kind="stable")
        row, col, value = row[order], col[order], value[order]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_rows), out=indptr[1:])
    out = sp.csr_matrix((value, col, indptr), shape=(n_rows, n_cols))
    out.sort_indices()  # a check where they are sorted already
    return out


class SomaSource:
    """A TileDB-SOMA experiment (a local folder) read in place: obs filtered where it is read,
    X one chunk of cells at a time."""

    claims = staticmethod(is_experiment)
    why_not = staticmethod(why_not_experiment)

    def __init__(
        self,
        path: Path,
        dataset_id: str,
        read: ReadOptions | None = None,
        *,
        soma_joinids: NDArray[np.int64] | None = None,
    ) -> None:
        """Open the experiment at ``path``; its cells are those ``read.obs_filter`` keeps, or
        exactly ``soma_joinids`` where given (a selection's cells, read again by the loader;
        the filter is then not applied)."""
        self.path = Path(path)
        self.dataset_id = dataset_id
        read = read or ReadOptions()
        self.obs_filter = read.obs_filter if soma_joinids is None else None
        self._given = None if soma_joinids is None else np.unique(np.asarray(soma_joinids))
        self._counts: bool | None = None
        soma = _tiledbsoma(self.path)
        with _reading(self.path, "the experiment"), soma.open(str(self.path)) as found:
            if not isinstance(found, soma.Experiment):
                msg = f"{self.path}: {why_not_experiment(self.path)}"
                raise InputError(msg)
            ms = found.ms
            names = sorted(ms.keys())
            if MEASUREMENT in names or len(names) == 1:
                self.measurement = MEASUREMENT if MEASUREMENT in names else names[0]
            else:
                has = ", ".join(names) or "none"
                msg = f"{self.path}: no measurement '{MEASUREMENT}' in ms (has: {has})"
                raise InputError(msg)
            measurement = ms[self.measurement]
            if "X" not in measurement or "var" not in measurement:
                msg = f"{self.path}: ms['{self.measurement}'] has no X or no var"
                raise InputError(msg)
            self.layer = self._layer(measurement.X, read.counts_layer)
            x = measurement.X[self.layer]
            if not isinstance(x, soma.SparseNDArray):
                msg = (
                    f"{self.path}: X['{self.layer}'] is a {type(x).__name__}; scurate reads "
                    "sparse X layers (as Census writes them)"
                )
                raise InputError(msg)
            var = measurement.var.read(column_names=["soma_joinid"]).concat()
            self._var_joinids = np.sort(_column(var, "soma_joinid").astype(np.int64))
            self._obsm = sorted(measurement.obsm.keys()) if "obsm" in measurement else []
            self._id_columns = [c for c in ID_COLUMNS if c in found.obs.schema.names]
            self.soma_joinids, self.obs_names = self._cells(found.obs)
        self.n_obs = len(self.soma_joinids)
        self.n_vars = len(self._var_joinids)
        self._var_contiguous = bool(
            self.n_vars == 0 or self._var_joinids[-1] == self.n_vars - 1
        )  # sorted and distinct: 0..n-1 exactly when the last one is n-1

    def _layer(self, layers: Any, asked: str | None) -> str:
        names = list(layers.keys())
        if asked is not None:
            if asked not in names:
                has = ", ".join(sorted(names)) or "none"
                msg = (
                    f"{self.path}: counts_layer='{asked}' is not a layer of "
                    f"ms['{self.measurement}'].X (has: {has})"
                )
                raise InputError(msg)
            return asked
        if not names:
            msg = f"{self.path}: ms['{self.measurement}'].X has no layers"
            raise InputError(msg)
        if COUNTS_LAYER in names or len(names) == 1:
            return COUNTS_LAYER if COUNTS_LAYER in names else str(names[0])
        return str(sorted(names)[0])

    def _read_obs(self, obs: Any, columns: list[str] | None = None) -> Any:
        """obs of the source's cells (an arrow table, in no set order): those the obs filter
        keeps, or the joinids given; a filter TileDB cannot parse is one line."""
        if self._given is not None:
            table = obs.read(coords=(self._given,), column_names=columns).concat()
            if table.num_rows != len(self._given):
                msg = (
                    f"{self.path}: obs has {table.num_rows} of the {len(self._given)} "
                    "soma_joinids asked for (the experiment changed since the selection?)"
                )
                raise InputError(msg)
            return table
        try:
            return obs.read(column_names=columns, value_filter=self.obs_filter).concat()
        except Exception as exc:
            if self.obs_filter is None or not isinstance(exc, _tiledbsoma(self.path).SOMAError):
                raise
            msg = (
                f"{self.path}: obs_filter={self.obs_filter!r} is not a valid value filter on obs "
                f"({_first_line(exc)})"
            )
            raise InputError(msg) from exc

    def _cells(self, obs: Any) -> tuple[NDArray[np.int64], NDArray[np.object_]]:
        """The source's joinids, ascending, and their obs names."""
        table = self._read_obs(obs, ["soma_joinid", *self._id_columns])
        joinids = _column(table, "soma_joinid").astype(np.int64)
        if len(joinids) == 0:
            if self.obs_filter is None:
                msg = f"{self.path}: has no cells"
            else:
                msg = f"{self.path}: obs_filter={self.obs_filter!r} matches no cells"
            raise InputError(msg)
        order = np.argsort(joinids, kind="stable")
        joinids = joinids[order]
        for name in self._id_columns:
            ids = pd.Index(_column(table, name)[order].astype(str))
            if ids.is_unique:
                self._names_from: str | None = name
                return joinids, np.asarray(ids, dtype=object)
        self._names_from = None
        return joinids, joinids.astype(str).astype(object)

    @contextlib.contextmanager
    def _open(self, what: str) -> Iterator[Any]:
        """The experiment's measurement, open for reading ``what``."""
        soma = _tiledbsoma(self.path)
        with _reading(self.path, what), soma.Experiment.open(str(self.path)) as exp:
            yield exp

    def read_obs(self) -> pd.DataFrame:
        """obs of the source's cells (ascending joinid), indexed by obs name; X is not read."""
        with self._open("obs") as exp:
            frame = self._read_obs(exp.obs).to_pandas()
        frame = frame.sort_values("soma_joinid", kind="stable")
        if len(frame) != self.n_obs or np.any(frame["soma_joinid"].to_numpy() != self.soma_joinids):
            msg = f"{self.path}: obs changed while scurate was reading it"
            raise InputError(msg)
        drop = ["soma_joinid"] + ([self._names_from] if self._names_from else [])
        frame = frame.drop(columns=drop)
        frame.index = pd.Index(self.obs_names, name=None)
        return frame

    def read_genes(self) -> GeneTable:
        """var, in ascending var joinid: names from var_id or feature_id, and string columns."""
        with self._open("var") as exp:
            table = exp.ms[self.measurement].var.read().concat()
        order = np.argsort(_column(table, "soma_joinid"), kind="stable")
        text = [f.name for f in table.schema if _is_text(f.type)]
        index = next((c for c in VAR_ID_COLUMNS if c in text), None)
        columns = {
            c: np.asarray(_column(table, c)[order], dtype=object) for c in text if c != index
        }
        names = (
            np.asarray(_column(table, index)[order], dtype=object)
            if index is not None
            else self._var_joinids.astype(str).astype(object)
        )
        return GeneTable(names, columns)

    def obsm_keys(self) -> list[str]:
        return list(self._obsm)

    def read_obsm(self, key: str) -> NDArray[np.float32]:
        """``ms[measurement].obsm[key]`` for the source's cells, read a chunk at a time."""
        if key not in self._obsm:
            has = ", ".join(self._obsm) if self._obsm else "no obsm entries"
            msg = f"{self.path}: obsm has no '{key}' (has: {has})"
            raise InputError(msg)
        with self._open(f"obsm['{key}']") as exp:
            array = exp.ms[self.measurement].obsm[key]
            if len(array.shape) != 2:
                msg = f"{self.path}: obsm['{key}'] is not a 2-D array"
                raise InputError(msg)
            out = np.zeros((self.n_obs, int(array.shape[1])), dtype=np.float32)
            for start in range(0, self.n_obs, CHUNK_ROWS):
                ids = self.soma_joinids[start : start + CHUNK_ROWS]
                for table in array.read(coords=(self._coords(ids), slice(None))).tables():
                    rows = start + np.searchsorted(ids, _column(table, "soma_dim_0"))
                    cols = _column(table, "soma_dim_1").astype(np.int64)
                    out[rows, cols] = _column(table, "soma_data")
        return out

    @staticmethod
    def _coords(ids: NDArray[np.int64]) -> Any:
        """Joinids as SOMA coordinates: a range where they are consecutive (one read)."""
        if int(ids[-1]) - int(ids[0]) + 1 == len(ids):
            return slice(int(ids[0]), int(ids[-1]))  # inclusive, as SOMA slices are
        return ids

    def _read(self, x: Any, ids: NDArray[np.int64]) -> sp.csr_matrix:
        """X's rows of the joinids ``ids`` (ascending, distinct), on the source's var order."""
        rows, cols, data = [], [], []
        coords = self._coords(ids)
        for table in x.read(coords=(coords,)).tables():
            dim0 = _column(table, "soma_dim_0")
            row = dim0 - ids[0] if isinstance(coords, slice) else np.searchsorted(ids, dim0)
            col = _column(table, "soma_dim_1")
            value = _column(table, "soma_data")
            if not self._var_contiguous:  # var joinids with gaps: map them to positions
                at = np.minimum(np.searchsorted(self._var_joinids, col), self.n_vars - 1)
                keep = self._var_joinids[at] == col
                row, col, value = row[keep], at[keep], value[keep]
            rows.append(row)
            cols.append(col)
            data.append(value)
        if not rows:
            return sp.csr_matrix((len(ids), self.n_vars), dtype=np.float32)
        return _csr(
            np.concatenate(rows), np.concatenate(cols), np.concatenate(data), len(ids), self.n_vars
        )

    def iter_x(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, sp.csr_matrix]]:
        """Yield ``(first_row, csr_chunk)`` over the layer, ``chunk_rows`` cells at a time."""
        with self._open(f"X['{self.layer}']") as exp:
            x = exp.ms[self.measurement].X[self.layer]
            for start in range(0, self.n_obs, chunk_rows):
                yield start, self._read(x, self.soma_joinids[start : start + chunk_rows])

    def read_rows(self, rows: NDArray[np.int64]) -> sp.csr_matrix:
        """The given rows (sorted, distinct) of the layer as CSR, in that order: one point
        read of their joinids per ``CHUNK_ROWS`` rows."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return sp.csr_matrix((0, self.n_vars), dtype=np.float32)
        with self._open(f"X['{self.layer}']") as exp:
            x = exp.ms[self.measurement].X[self.layer]
            parts = [
                self._read(x, self.soma_joinids[rows[start : start + CHUNK_ROWS]])
                for start in range(0, len(rows), CHUNK_ROWS)
            ]
        return sp.csr_matrix(sp.vstack(parts, format="csr"))

    def row_reader(self, rows: NDArray[np.int64]) -> Callable[[NDArray[np.int64]], sp.csr_matrix]:
        """A reader of subsets of ``rows``: each call is a point read of their joinids (SOMA
        finds rows by joinid itself, so there is nothing to look up once)."""
        return self.read_rows

    def x_is_counts(self) -> bool:
        """True when the layer's first cells hold only non-negative integers (raw counts);
        read once (embedding and duplicates both ask)."""
        if self._counts is None:
            with self._open(f"X['{self.layer}']") as exp:
                x = exp.ms[self.measurement].X[self.layer]
                data = self._read(x, self.soma_joinids[:COUNTS_CHECK_ROWS]).data
            self._counts = bool(np.all(data >= 0) and np.all(data == np.round(data)))
        return self._counts

"""AnnData objects in memory (scanpy's), read as sources: nothing is copied, X is sliced in
row chunks as a file would be read.

``scurate.select(adata, budget=...)`` and a mix of AnnData objects and paths come through
:func:`inputs_of`; the counts are found as for files (``X``, ``.raw.X`` or a layer, see
:class:`scurate._data.sources.ReadOptions`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate._data.sources import (
    CHUNK_ROWS,
    COUNTS_CHECK_ROWS,
    GeneTable,
    ReadOptions,
    Source,
    check_obs_filter,
    open_sources,
    require_obsm,
)
from scurate.errors import InputError

MEMORY_PREFIX = "anndata:"  # a manifest's ``source`` for a cell that came from memory
DEFAULT_NAME = "adata"
Input = Any  # a path, an AnnData, or a mapping of dataset names to either


def is_anndata(item: object) -> bool:
    """True for an ``anndata.AnnData`` (imported lazily: a path-only run never needs it)."""
    import anndata

    return isinstance(item, anndata.AnnData)


def _whole_numbers(matrix: Any, rows: int = COUNTS_CHECK_ROWS) -> bool:
    first = matrix[:rows]
    data = first.data if sp.issparse(first) else np.asarray(first)
    return bool(np.all(data >= 0) and np.all(data == np.round(data)))


def _string_columns(frame: pd.DataFrame, n: int) -> dict[str, NDArray[np.object_]]:
    out = {}
    for key in frame.columns:
        column = frame[key]
        if column.dtype.kind == "b":  # a flag (mt, mito), kept as text like the rest
            out[str(key)] = np.where(column.to_numpy(), "True", "False").astype(object)
        elif isinstance(column.dtype, pd.CategoricalDtype) or column.dtype.kind in "OSU":
            values = np.asarray(column.astype(str) if column.dtype != object else column)
            if values.ndim == 1 and len(values) == n:
                out[str(key)] = values.astype(object)
    return out


class AnnDataSource:
    """An AnnData in memory as a :class:`scurate._data.sources.Source`.

    ``counts_from`` says where the raw counts were found (``"X"``, ``"raw"``,
    ``"layers['NAME']"``), or None where the object holds none and X is read as normalized.
    """

    def __init__(self, adata: Any, dataset_id: str, read: ReadOptions | None = None) -> None:
        read = read or ReadOptions()
        self.adata = adata
        self.dataset_id = dataset_id
        self.path = Path(f"{MEMORY_PREFIX}{dataset_id}")
        self.n_obs = int(adata.n_obs)
        if self.n_obs == 0:
            msg = f"AnnData '{dataset_id}': has no cells"
            raise InputError(msg)
        self.obs_names = np.asarray(adata.obs_names, dtype=object)
        names = pd.Index(self.obs_names)
        if not names.is_unique:
            dup = names[names.duplicated()][0]
            msg = (
                f"AnnData '{dataset_id}': obs names are not unique ('{dup}' appears "
                f"{int((names == dup).sum())} times; adata.obs_names_make_unique() fixes it)"
            )
            raise InputError(msg)
        self.counts_from, self._matrix, self._var = self._counts(read.counts_layer)
        self.n_vars = int(self._matrix.shape[1])

    def _counts(self, wanted: str | None) -> tuple[str | None, Any, pd.DataFrame]:
        a, where = self.adata, f"AnnData '{self.dataset_id}'"
        raw = a.raw
        choices: dict[str, tuple[Any, pd.DataFrame]] = {}
        if a.X is not None:
            choices["X"] = (a.X, a.var)
        if raw is not None:
            choices["raw"] = (raw.X, raw.var)
        for layer in a.layers:
            choices[f"layers['{layer}']"] = (a.layers[layer], a.var)
        if wanted is not None:
            key = wanted if wanted in ("X", "raw") else f"layers['{wanted}']"
            if key not in choices:
                has = ", ".join(["X", "raw", *a.layers]) if choices else "nothing"
                msg = f"{where}: no counts_layer={wanted!r} (has: {has})"
                raise InputError(msg)
            matrix, var = choices[key]
            if key == "X":
                return (key if _whole_numbers(matrix) else None), matrix, var  # X as it is
            if not _whole_numbers(matrix):
                msg = f"{where}: counts_layer={wanted!r} does not hold whole numbers"
                raise InputError(msg)
            self._check_raw(key)
            return key, matrix, var
        for key in ("X", "raw", "layers['counts']"):
            if key in choices and _whole_numbers(choices[key][0]):
                self._check_raw(key)
                return key, *choices[key]
        if "X" not in choices:
            msg = f"{where}: has no X (give `obsm_key` to use a stored embedding)"
            raise InputError(msg)
        return None, *choices["X"]

    def _check_raw(self, key: str) -> None:
        """``.raw`` read as the counts must hold every gene of X (it may hold more)."""
        if key != "raw":
            return
        missing = self.adata.var_names.difference(self.adata.raw.var_names)
        if len(missing):
            msg = (
                f"AnnData '{self.dataset_id}': .raw lacks {len(missing)} of X's "
                f"{self.adata.n_vars} genes (such as '{missing[0]}'), so it is not the raw counts "
                "of this X; give `counts_layer` to read another matrix"
            )
            raise InputError(msg)

    def read_obs(self) -> pd.DataFrame:
        obs: pd.DataFrame = self.adata.obs.copy()
        return obs

    def read_genes(self) -> GeneTable:
        names = np.asarray(self._var.index, dtype=object)
        return GeneTable(names, _string_columns(self._var, len(names)))

    def obsm_keys(self) -> list[str]:
        return sorted(self.adata.obsm.keys())

    def read_obsm(self, key: str) -> NDArray[np.float32]:
        require_obsm(f"AnnData '{self.dataset_id}'", self.obsm_keys(), key)
        values = np.asarray(self.adata.obsm[key])
        if values.ndim != 2 or values.dtype.kind not in "fiu":
            msg = f"AnnData '{self.dataset_id}': obsm['{key}'] is not a 2-D numeric array"
            raise InputError(msg)
        return np.ascontiguousarray(values, dtype=np.float32)

    def _rows(self, at: slice | NDArray[np.int64]) -> sp.csr_matrix:
        part = self._matrix[at]
        return sp.csr_matrix(part if sp.issparse(part) else np.asarray(part))

    def iter_x(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, sp.csr_matrix]]:
        for start in range(0, self.n_obs, chunk_rows):
            yield start, self._rows(slice(start, start + chunk_rows))

    def read_rows(self, rows: NDArray[np.int64]) -> sp.csr_matrix:
        return self._rows(np.asarray(rows, dtype=np.int64))

    def row_reader(self, rows: NDArray[np.int64]) -> Callable[[NDArray[np.int64]], sp.csr_matrix]:
        return self.read_rows

    def x_is_counts(self) -> bool:
        return self.counts_from is not None


def inputs_of(
    given: Input,
) -> list[tuple[str | None, Any]]:
    """``(name, item)`` for each input: a path, an AnnData, a list of them, or a mapping of
    dataset names to AnnData objects (the name becomes the dataset_id)."""
    if isinstance(given, (str, os.PathLike)) or is_anndata(given):
        return [(None, given)]
    if isinstance(given, Mapping):
        return [(str(k), v) for k, v in given.items()]
    if isinstance(given, Sequence):
        return [(None, item) for item in given]
    msg = (
        f"sources: expected paths, AnnData objects or a mapping of names to them, "
        f"not {type(given).__name__}"
    )
    raise InputError(msg)


def open_inputs(
    given: Input, readers: Mapping[str, Any] | None = None, read: ReadOptions | None = None
) -> list[Source]:
    """Open paths (files and folders, as :func:`scurate._data.sources.open_sources` does) and
    AnnData objects in the order given; dataset ids are made unique across both."""
    sources: list[Source] = []
    taken: set[str] = set()
    for name, item in inputs_of(given):
        if is_anndata(item):
            stem = name or DEFAULT_NAME
            dataset_id, n = stem, 1
            while dataset_id in taken:
                n += 1
                dataset_id = f"{stem}-{n}"
            taken.add(dataset_id)
            sources.append(AnnDataSource(item, dataset_id, read))
        elif isinstance(item, (str, os.PathLike)) and name is None:
            sources.extend(open_sources([item], readers, read, taken=taken, check_filter=False))
        else:
            what = f"sources['{name}']" if name is not None else "sources"
            msg = f"{what}: {type(item).__name__} is not " + (
                "an AnnData (a mapping names AnnData objects)"
                if name is not None
                else "a path or an AnnData"
            )
            raise InputError(msg)
    if not sources:
        msg = "no sources given"
        raise InputError(msg)
    if read is not None and read.obs_filter is not None:
        check_obs_filter(sources, read.obs_filter)
    return sources


def describe(given: Input) -> list[str]:
    """How report.json names the inputs: a path as given, an AnnData by name and shape."""
    out = []
    unnamed = 0
    for name, item in inputs_of(given):
        if is_anndata(item):
            if name is None:
                unnamed += 1
                name = DEFAULT_NAME if unnamed == 1 else f"{DEFAULT_NAME}-{unnamed}"
            label = f"{MEMORY_PREFIX}{name}"
            out.append(f"{label} ({item.n_obs} cells x {item.n_vars} genes, in memory)")
        else:
            out.append(str(item))
    return out

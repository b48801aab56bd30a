"""A selection back in scanpy's hands: :func:`to_anndata` (the selected cells as one AnnData
on one gene order) and :func:`annotate` (the selection and scores written into
``adata.obs``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate._data import manifest as mf
from scurate._data.genes import common_genes
from scurate._data.memory import AnnDataSource, is_anndata
from scurate._data.sources import Source, read_rows
from scurate.errors import InputError

# the manifest columns annotate writes into obs, where the run filled them
OBS_COLUMNS = (
    "selected",
    "selection_rank",
    "weight",
    "exact_dup_of",
    "near_dup_group",
    "density",
    "novelty",
    "nearest_reference",
)
EMBEDDING_KEY = "X_scurate"  # obsm key of the embedding the selection was made in


def _obs_frame(frame: pl.DataFrame, index: Sequence[str]) -> pd.DataFrame:
    """Manifest rows as obs: nullable pandas types, so a null stays missing, not 0."""
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        if series.null_count() == series.len():
            continue  # a column no stage filled says nothing
        if series.dtype == pl.Boolean:
            columns[name] = series.to_pandas().astype("boolean").array  # values, not its index
        elif series.dtype.is_integer():
            columns[name] = series.to_pandas().astype("Int64").array
        elif series.dtype.is_float():
            columns[name] = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
        else:
            columns[name] = pd.Categorical(series.cast(pl.String).to_numpy())
    return pd.DataFrame(columns, index=pd.Index(list(index), dtype=object))


def to_anndata(
    manifest: pl.DataFrame,
    sources: Sequence[Source],
    embedding: NDArray[np.float32] | None,
) -> Any:
    """The selected cells in priority order as one AnnData: X holds each cell's counts (as
    read: raw counts where the source had them) on the genes every source shares, obs the
    manifest's columns, ``obsm['X_scurate']`` the embedding the selection was made in."""
    import anndata

    chosen = manifest.with_row_index("pool_row").filter(pl.col("selected")).sort("selection_rank")
    space = common_genes(sources)
    by_id = {s.dataset_id: k for k, s in enumerate(sources)}
    parts: list[sp.csr_matrix] = []
    order: list[NDArray[np.int64]] = []
    for (dataset_id,), cells in chosen.group_by(["dataset_id"], maintain_order=True):
        k = by_id[str(dataset_id)]
        rows = cells["row"].to_numpy().astype(np.int64)
        sort = np.argsort(rows, kind="stable")
        block = read_rows(sources[k], rows[sort]) @ space.projections[k]
        inverse = np.empty_like(sort)
        inverse[sort] = np.arange(len(sort))
        parts.append(sp.csr_matrix(block, dtype=np.float32)[inverse])
        order.append(cells["selection_rank"].to_numpy().astype(np.int64))
    ranks = np.concatenate(order)
    x = sp.vstack(parts, format="csr")[np.argsort(ranks, kind="stable")]
    ids = chosen["cell_id"].to_list()
    obs = _obs_frame(chosen.drop("pool_row"), ids)
    var = pd.DataFrame(index=pd.Index(list(space.genes), dtype=object))
    out = anndata.AnnData(X=x, obs=obs, var=var)
    out.uns["scurate"] = {"gene_id_kind": space.kind}
    if embedding is not None:
        out.obsm[EMBEDDING_KEY] = np.asarray(embedding)[chosen["pool_row"].to_numpy()]
    return out


def _dataset_of(adata: Any, manifest: pl.DataFrame, sources: Sequence[Source]) -> str:
    """The dataset of the run that ``adata`` is: the same object, else the one dataset whose
    cells are ``adata``'s obs names in the same order."""
    for source in sources:
        if isinstance(source, AnnDataSource) and source.adata is adata:
            return source.dataset_id
    names = np.asarray(adata.obs_names).astype(str)
    for source in sources:
        if source.n_obs == len(names) and np.array_equal(mf.as_str(source.obs_names), names):
            return source.dataset_id
    msg = (
        f"annotate: this AnnData ({adata.n_obs} cells) is none of the run's datasets "
        f"({', '.join(s.dataset_id for s in sources)}): neither the same object nor the same "
        "obs names"
    )
    raise InputError(msg)


def annotate(adata: Any, manifest: pl.DataFrame, sources: Sequence[Source]) -> Any:
    """Write the run's selection and scores into ``adata.obs`` (``selected``,
    ``selection_rank``, ``weight``, ``exact_dup_of``, ``near_dup_group``, ``density``, and
    ``novelty``/``nearest_reference`` with a reference), row for row; returns ``adata``."""
    if not is_anndata(adata):
        msg = f"annotate: expected an AnnData, not {type(adata).__name__}"
        raise InputError(msg)
    dataset_id = _dataset_of(adata, manifest, sources)
    rows = manifest.filter(pl.col("dataset_id") == dataset_id).sort("row")
    present = [c for c in OBS_COLUMNS if c in rows.columns and rows[c].null_count() < rows.height]
    if "selected" in rows.columns and "selected" not in present:
        present.insert(0, "selected")
    frame = _obs_frame(rows.select(present), adata.obs_names)
    for column in present:
        values = frame[column]
        adata.obs[column] = values.fillna(False).astype(bool) if column == "selected" else values
    return adata

"""Bad values in a source stop the run with one line naming the file, the row and the cell:
NaN or inf in X as it streams, an obsm of another length than obs, a file that shrank while it
was read."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scurate
from scurate._data.sources import open_sources
from scurate.errors import InputError

from conftest import TYPES, make_adata, type_programs
from test_cli_select import fails_in_one_line


def lab(n: int = 200, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    programs = type_programs(np.random.default_rng(42), len(TYPES))
    return make_adata(rng, programs, TYPES, [n // 5] * 5, prefix="c")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_x_names_the_file_and_the_cell(tmp_path: Path, bad: float) -> None:
    adata = lab()
    adata.X = adata.X.tocsr()
    row = 117
    adata.X.data[adata.X.indptr[row] + 1] = bad  # one value of one cell, a gene of no matter
    path = tmp_path / "lab.h5ad"
    adata.write_h5ad(path)
    with pytest.raises(InputError) as err:
        scurate.select([path], 10)
    assert str(err.value) == f"{path}: X row {row} (cell 'c00117') has NaN or inf"
    fails_in_one_line(
        ["select", path, "-b", "10", "-o", tmp_path / "out"], "X row 117 (cell 'c00117')"
    )


def test_an_obsm_shorter_than_obs_is_one_line(tmp_path: Path) -> None:
    adata = lab()
    path = tmp_path / "lab.h5ad"
    adata.write_h5ad(path)
    import h5py

    with h5py.File(path, "a") as f:
        f["obsm"].create_dataset("X_short", data=np.zeros((150, 4), np.float32))
    fails_in_one_line(
        ["select", path, "-b", "10", "-o", tmp_path / "out", "--obsm-key", "X_short"],
        f"{path}: obsm['X_short'] has 150 rows but obs has 200 cells",
    )


def test_a_file_that_shrank_while_read_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "lab.h5ad"
    lab(200).write_h5ad(path)
    (source,) = open_sources([path])
    lab(100, seed=1).write_h5ad(path)  # replaced by a smaller valid file after opening
    with pytest.raises(InputError) as err:
        list(source.iter_x())
    assert str(err.value).startswith(f"{path}: X holds 100 rows but obs has 200 cells")


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ("negative", "values up to"),  # counts with one negative value: not counts any more
        ("cpm", "values up to"),  # normalized to 1e6 per cell, not logged
    ],
)
def test_an_x_neither_counts_nor_log_normalized_is_one_line(
    tmp_path: Path, change: str, text: str
) -> None:
    adata = lab()
    x = adata.X.tocsr().astype(np.float32)
    if change == "negative":
        x.data[5] = -3.0
    else:
        totals = np.asarray(x.sum(axis=1)).ravel()
        x = (x.multiply(1e6 / totals[:, None])).tocsr().astype(np.float32)
    adata.X = x
    path = tmp_path / "lab.h5ad"
    adata.write_h5ad(path)
    err = fails_in_one_line(
        ["select", path, "-b", "10", "-o", tmp_path / "out"],
        f"{path}: X is neither raw counts nor log-normalized",
        text,
    )
    assert ("negative" in err) == (change == "negative")


@pytest.mark.parametrize("layout", ["dense", "csc"])
def test_a_dense_or_csc_file_that_shrank_while_read_is_one_line(
    tmp_path: Path, layout: str
) -> None:
    import scipy.sparse as sp

    def written(n: int, seed: int) -> ad.AnnData:
        adata = lab(n, seed)
        adata.X = adata.X.toarray() if layout == "dense" else sp.csc_matrix(adata.X)
        return adata

    path = tmp_path / "lab.h5ad"
    written(200, 0).write_h5ad(path)
    (source,) = open_sources([path])
    written(100, 1).write_h5ad(path)
    with pytest.raises(InputError) as err:
        list(source.iter_x())
    assert str(err.value).startswith(f"{path}: X holds 100 rows but obs has 200 cells")


def test_materialize_refuses_a_source_rewritten_since_the_selection(tmp_path: Path) -> None:
    path = tmp_path / "lab.h5ad"
    adata = lab()
    adata.write_h5ad(path)
    scurate.select_to_dir([path], 20, out=tmp_path / "sel")
    stat = path.stat()
    rewritten = adata.copy()
    rewritten.X = rewritten.X.tocsr()
    rewritten.X.data[:] = rewritten.X.data[::-1]  # same cells, same size, other counts
    rewritten.write_h5ad(path)
    import os

    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same modification time
    with pytest.raises(InputError, match=r"lab.h5ad: changed since the selection in .*select"):
        scurate.materialize(tmp_path / "sel", tmp_path / "shards")
    with pytest.raises(InputError, match="changed since the selection"):
        scurate.CellLoader(tmp_path / "sel")

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

"""One corpus in every format a user holds it in: h5ad, zarr, TileDB-SOMA and AnnData in
memory, in one call, give the manifest the same cells give as h5ad files."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import polars as pl
import pytest
import scurate
from scurate.cli import app
from typer.testing import CliRunner

from conftest import TYPES, ensembl_ids, gene_symbols, make_counts, type_programs
from test_zarr import write_zarr

soma_io = pytest.importorskip("tiledbsoma.io")  # the optional scurate[soma]

N_CELLS = 240


def lab(seed: int, *, copies_of: ad.AnnData | None = None) -> ad.AnnData:
    """Raw counts of a lab, Ensembl ids as var names and symbols in var['feature_name'] (as
    Census and CELLxGENE files have them); ``copies_of`` plants 30 of its cells as copies."""
    rng = np.random.default_rng(seed)
    programs = type_programs(np.random.default_rng(42), len(TYPES))
    types = rng.integers(0, len(TYPES), size=N_CELLS)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(np.asarray(TYPES)[types]),
            "donor_id": pd.Categorical([f"s{seed}d{i % 3}" for i in range(N_CELLS)]),
        },
        index=[f"lab{seed}_{i:04d}" for i in range(N_CELLS)],
    )
    var = pd.DataFrame({"feature_name": gene_symbols()}, index=ensembl_ids())
    x = make_counts(rng, programs, types)
    if copies_of is not None:
        x = x.tolil()
        x[:30] = copies_of.X[:30]
        x = x.tocsr()
    return ad.AnnData(x, obs=obs, var=var)


def test_h5ad_zarr_soma_and_memory_in_one_call_give_the_h5ad_manifest(tmp_path: Path) -> None:
    a = lab(1)
    b = lab(2, copies_of=a)
    c = lab(3, copies_of=b)
    d = lab(4)
    plain = tmp_path / "plain"
    plain.mkdir()
    for name, adata in (("lab_a", a), ("lab_b", b), ("lab_c", c)):
        adata.write_h5ad(plain / f"{name}.h5ad")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    a.write_h5ad(mixed / "lab_a.h5ad")
    write_zarr(b, mixed / "lab_b.zarr", zarr_format=3)
    soma_io.from_anndata(str(mixed / "lab_c"), c, measurement_name="RNA", X_layer_name="raw")

    d.write_h5ad(plain / "adata.h5ad")  # in memory below, unnamed: dataset_id 'adata'

    def quiet(stage: str, done: int, total: int) -> None:
        return None

    in_order = [plain / f"{name}.h5ad" for name in ("lab_a", "lab_b", "lab_c", "adata")]
    expected = scurate.select(in_order, 60, progress=quiet).manifest
    got = scurate.select([mixed, d], 60, progress=quiet).manifest
    formats = dict(zip(got["dataset_id"], got["source"], strict=True))
    assert formats == {
        "lab_a": str(mixed / "lab_a.h5ad"),
        "lab_b": str(mixed / "lab_b.zarr"),
        "lab_c": str(mixed / "lab_c"),
        "adata": "anndata:adata",
    }
    same = [c for c in expected.columns if c not in ("source", "soma_joinid")]
    assert got.select(same).equals(expected.select(same))
    soma = got.filter(pl.col("dataset_id") == "lab_c")
    assert soma["soma_joinid"].to_list() == list(range(N_CELLS))
    assert got.filter(pl.col("dataset_id") != "lab_c")["soma_joinid"].null_count() == 3 * N_CELLS
    # the planted copies are found across formats: zarr's of h5ad's cells, and SOMA's of the
    # zarr's copies, which point at the kept copy in the h5ad file
    for dataset in ("lab_b", "lab_c"):
        copies = got.filter(pl.col("dataset_id") == dataset)["exact_dup_of"].drop_nulls()
        assert copies.len() >= 25 and copies.str.starts_with("lab_a/").all()


def test_the_cli_reads_a_mix_and_the_loader_reads_it_back(tmp_path: Path) -> None:
    a, b = lab(1), lab(2)
    write_zarr(a, tmp_path / "lab_a.zarr")
    soma_io.from_anndata(str(tmp_path / "lab_b"), b, measurement_name="RNA", X_layer_name="raw")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["select", str(tmp_path), "-b", "40", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    loader = scurate.CellLoader(out, shuffle=False)
    assert sorted(loader.sources) == ["lab_a", "lab_b"]
    cells = sum(len(batch) for batch in loader)
    assert cells == 40

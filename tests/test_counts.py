"""Counts wherever they are (X, .raw.X, a layer), is_primary_data and --primary-only, on
CELLxGENE-shaped files written by anndata: normalized X, raw counts beside it, schema obs."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import scurate
from scurate._data.anndata_store import H5adSource
from scurate._data.sources import ReadOptions
from scurate.errors import InputError

from conftest import TYPES, ensembl_ids, gene_symbols, make_adata, type_programs
from test_cli_select import fails_in_one_line, run

TYPE_IDS = ("CL:0000084", "CL:0000236", "CL:0000623", "CL:0000576", "CL:0000784")
IN_X = 250  # X keeps these many of the 300 genes; .raw keeps them all, as scanpy leaves it


def counts_of(n_per_type: list[int], prefix: str, seed: int) -> ad.AnnData:
    """Raw counts, Ensembl ids in var_names and symbols in var['feature_name'] (as CELLxGENE)."""
    rng = np.random.default_rng(seed)
    programs = type_programs(np.random.default_rng(42), len(TYPES))
    adata = make_adata(rng, programs, TYPES, n_per_type, prefix=prefix, genes=ensembl_ids())
    adata.var["feature_name"] = gene_symbols()
    types = adata.obs["cell_type"].cat.codes.to_numpy()
    adata.obs = adata.obs.assign(cell_type_ontology_term_id=np.asarray(TYPE_IDS)[types])
    adata.uns["organism_ontology_term_id"] = "NCBITaxon:9606"
    return adata


def normalized(x: sp.csr_matrix) -> sp.csr_matrix:
    """log1p of counts scaled to 10,000 a cell, as scanpy's normalize_total and log1p."""
    totals = np.asarray(x.sum(axis=1)).ravel()
    out = sp.csr_matrix(sp.diags(1e4 / totals) @ x, dtype=np.float32)
    out.data = np.log1p(out.data)
    return out


def deposit(counts: ad.AnnData, *, primary: bool | list[bool] = True) -> ad.AnnData:
    """As a CELLxGENE deposit: X normalized on the first ``IN_X`` genes, the counts of all
    genes in .raw, is_primary_data in obs."""
    adata = counts.copy()
    adata.obs["is_primary_data"] = primary
    adata.raw = adata
    adata = adata[:, :IN_X].copy()
    adata.X = normalized(sp.csr_matrix(adata.X))
    return adata


def redeposit(counts: ad.AnnData, *, primary: bool | list[bool] = False) -> ad.AnnData:
    """The same cells deposited again: X normalized, the counts in layers['counts'], no raw."""
    adata = counts.copy()
    adata.obs["is_primary_data"] = primary
    adata.layers["counts"] = sp.csr_matrix(adata.X)
    adata.X = normalized(sp.csr_matrix(adata.X))
    return adata


@pytest.fixture
def atlas_and_copy(tmp_path: Path) -> tuple[Path, Path]:
    """An atlas (counts in .raw, 5 of its cells deposited twice inside it) and a re-deposit of
    its cells (counts in layers['counts'] on X's genes, is_primary_data false)."""
    counts = counts_of([120, 80, 60, 90, 10], "c", seed=1)
    twice = counts[:5].copy()
    twice.obs_names = [f"again{i}" for i in range(5)]
    atlas = deposit(ad.concat([counts, twice], merge="same", uns_merge="same"))
    again = redeposit(counts[:, :IN_X].copy())
    paths = (tmp_path / "atlas.h5ad", tmp_path / "again.h5ad")
    atlas.write_h5ad(paths[0])
    again.write_h5ad(paths[1])
    return paths


def test_counts_are_found_in_raw_and_in_a_layer(atlas_and_copy: tuple[Path, Path]) -> None:
    atlas, again = (H5adSource(p, p.stem) for p in atlas_and_copy)
    assert (atlas.counts_from, again.counts_from) == ("raw", "layers['counts']")
    assert atlas.x_is_counts() and again.x_is_counts()
    assert atlas.n_vars == 300 and again.n_vars == IN_X, "raw's genes, the layer's (X's)"
    assert atlas.read_genes().columns["feature_name"][-1] == "SG0300"
    file = ad.read_h5ad(atlas_and_copy[0])
    chunks = sp.vstack([c for _, c in atlas.iter_x(chunk_rows=100)])
    np.testing.assert_array_equal(chunks.toarray(), file.raw.X.toarray())
    rows = np.array([0, 3, 200, 364])
    np.testing.assert_array_equal(atlas.read_rows(rows).toarray(), file.raw.X[rows].toarray())
    as_x = H5adSource(atlas_and_copy[0], "atlas", ReadOptions(counts_layer="X"))
    assert as_x.counts_from is None and not as_x.x_is_counts() and as_x.n_vars == IN_X


@pytest.mark.parametrize("layout", ["csc", "dense"])
def test_a_raw_or_layer_in_any_layout_reads_as_csr_would(tmp_path: Path, layout: str) -> None:
    counts = counts_of([30, 20, 10, 20, 5], "c", seed=2)
    stored = {"csc": sp.csc_matrix, "dense": lambda m: m.toarray()}[layout]
    adata = deposit(counts)
    adata = ad.AnnData(
        adata.X, obs=adata.obs, var=adata.var, raw={"X": stored(counts.X), "var": counts.var}
    )
    adata.layers["counts"] = stored(sp.csr_matrix(counts.X[:, :IN_X]))
    adata.write_h5ad(tmp_path / "x.h5ad")
    for name, expected in (("raw", counts.X), ("counts", counts.X[:, :IN_X])):
        source = H5adSource(tmp_path / "x.h5ad", "x", ReadOptions(counts_layer=name))
        chunks = sp.vstack([c for _, c in source.iter_x(chunk_rows=16)])
        np.testing.assert_array_equal(chunks.toarray(), sp.csr_matrix(expected).toarray())
        rows = np.array([1, 2, 40, 84])
        np.testing.assert_array_equal(
            source.read_rows(rows).toarray(), sp.csr_matrix(expected)[rows].toarray()
        )


def test_a_redeposit_is_found_whole_as_exact_copies(atlas_and_copy: tuple[Path, Path]) -> None:
    scores = scurate.score(list(atlas_and_copy))
    manifest = scores.manifest
    again = manifest.filter(pl.col("dataset_id") == "again")
    expected = "atlas/" + again["cell_id"].str.strip_prefix("again/")
    assert (again["exact_dup_of"] == expected).all(), "every re-deposited cell, to its original"
    twice = manifest.filter(pl.col("cell_id").str.starts_with("atlas/again"))
    assert twice["exact_dup_of"].to_list() == [f"atlas/c{i:05d}" for i in range(5)]
    assert manifest.filter(pl.col("dataset_id") == "atlas")["exact_dup_of"].null_count() == 360
    assert manifest.group_by("dataset_id").agg(pl.col("is_primary_data").first()).sort(
        "dataset_id"
    ).rows() == [("again", False), ("atlas", True)]
    file = ad.read_h5ad(atlas_and_copy[0])
    np.testing.assert_allclose(
        manifest.filter(pl.col("dataset_id") == "atlas")["n_counts"].to_numpy(),
        np.asarray(file.raw.X.sum(axis=1)).ravel(),
    )
    report = scores.report
    where = {"atlas": "raw", "again": "layers['counts']"}
    assert report["scores"]["exact"]["counts_from"] == where
    assert report["embedding"]["counts_from"] == where
    assert report["embedding"]["normalized_sources"] == []
    assert report["scores"]["exact"]["skipped_sources"] == {}


def test_counts_layer_named_and_reported(atlas_and_copy: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, err = run("select", atlas_and_copy[0], "-b", "20", "-o", out, "--counts-layer", "X")
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["parameters"]["counts_layer"] == "X"
    assert report["embedding"]["counts_from"] == {"atlas": None}
    assert report["embedding"]["normalized_sources"] == ["atlas"]
    assert report["scores"]["exact"]["skipped_sources"]["atlas"].startswith("no integer counts")
    code, _, err = run(
        "select", atlas_and_copy[0], "-b", "20", "-o", out, "--counts-layer", "raw", "--overwrite"
    )
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["scores"]["exact"]["counts_from"] == {"atlas": "raw"}
    assert report["scores"]["exact"]["n_duplicates"] == 5


def test_primary_only_sets_aside_cells_deposited_again(tmp_path: Path) -> None:
    # a collection that re-deposits the atlas's 300 cells (not primary) beside 100 of its own,
    # measuring as many genes and larger: its copies are the ones kept as exact duplicates
    counts = counts_of([100, 60, 50, 80, 10], "c", seed=3)
    own = counts_of([40, 30, 10, 20, 0], "new", seed=4)
    deposit(counts).write_h5ad(tmp_path / "atlas.h5ad")
    both = ad.concat([counts, own], merge="same", uns_merge="same")
    redeposit(both, primary=[False] * 300 + [True] * 100).write_h5ad(tmp_path / "collection.h5ad")
    sources = [tmp_path / "atlas.h5ad", tmp_path / "collection.h5ad"]

    plain = scurate.select(sources, 50, seed=1, qc="off")  # duplicates only, no QC filter
    assert "primary_only" not in plain.report
    assert plain.report["duplicates"]["set_aside_per_dataset"]["atlas"] == 300

    out = tmp_path / "out"
    code, _, err = run("select", *sources, "-b", "400", "-o", out, "--primary-only", "--qc", "off")
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["primary_only"] == {
        "set_aside": 300,
        "set_aside_per_dataset": {"atlas": 0, "collection": 300},
    }
    assert report["duplicates"]["set_aside"] == 0, "the atlas's copies stand for the cells"
    rows = {r["dataset_id"]: r for r in report["datasets"]}
    assert rows["collection"]["not_primary_set_aside"] == 300
    manifest = pl.read_parquet(out / "manifest.parquet")
    chosen = manifest.filter("selected")
    assert chosen.height == 400 and chosen["is_primary_data"].all()
    assert chosen.group_by("dataset_id").len().sort("dataset_id").rows() == [
        ("atlas", 300),
        ("collection", 100),
    ]
    fails_in_one_line(
        [
            "select",
            *sources,
            "-b",
            "401",
            "-o",
            out,
            "--primary-only",
            "--qc",
            "off",
            "--overwrite",
        ],
        "--budget 401 is more than the 400 cells left after setting aside",
        "300 cells not primary data (--primary-only)",
    )


def test_primary_data_as_text_and_mixed_sources(tmp_path: Path) -> None:
    counts = counts_of([30, 20, 10, 20, 5], "t", seed=5)
    counts.obs["is_primary_data"] = ["True", "False"] * 42 + ["True"]
    counts.write_h5ad(tmp_path / "text.h5ad")
    counts_of([30, 20, 10, 20, 5], "n", seed=6).write_h5ad(tmp_path / "none.h5ad")
    manifest = scurate.select([tmp_path], 30, primary_only=True).manifest
    flags = manifest.group_by("dataset_id", maintain_order=True).agg(
        pl.col("is_primary_data").sum(), pl.col("is_primary_data").null_count().alias("null")
    )
    assert flags.rows() == [("none", 0, 85), ("text", 43, 0)]
    assert not manifest.filter(pl.col("is_primary_data") == False)["selected"].any()  # noqa: E712


def raw_without_x_genes(path: Path) -> Path:
    counts = counts_of([10, 10, 10, 10, 5], "r", seed=7)
    adata = counts.copy()
    adata.X = normalized(sp.csr_matrix(adata.X))
    adata.raw = counts[:, 10:].copy()  # lacks X's first ten genes
    adata.write_h5ad(path)
    return path


def test_every_bad_counts_input_is_one_line(
    atlas_and_copy: tuple[Path, Path], tmp_path: Path
) -> None:
    again = atlas_and_copy[1]
    out = ["-b", "5", "-o", str(tmp_path / "o"), "--overwrite"]
    fails_in_one_line(
        ["select", again, *out, "--counts-layer", "spliced"],
        "again.h5ad: --counts-layer spliced: no such layer (layers: counts)",
    )
    fails_in_one_line(
        ["select", again, *out, "--counts-layer", "raw"],
        "again.h5ad: --counts-layer raw: ",
        "no .raw",
    )
    lognorm = ad.read_h5ad(again)
    lognorm.layers["lognorm"] = lognorm.X.copy()
    lognorm.write_h5ad(tmp_path / "lognorm.h5ad")
    fails_in_one_line(
        ["select", tmp_path / "lognorm.h5ad", *out, "--counts-layer", "lognorm"],
        "lognorm.h5ad: --counts-layer lognorm: layers['lognorm'] holds",
        "not whole numbers",
    )
    bad_raw = raw_without_x_genes(tmp_path / "badraw.h5ad")
    fails_in_one_line(
        ["select", bad_raw, *out],
        "badraw.h5ad: .raw lacks 10 of X's 300 genes (such as 'ENSG90000000001')",
        "give --counts-layer to read another matrix",
    )
    with pytest.raises(InputError, match="counts_layer"):
        H5adSource(bad_raw, "badraw")
    fails_in_one_line(
        ["select", bad_raw, *out, "--counts-layer", "raw"], ".raw lacks 10 of X's 300 genes"
    )
    code, _, err = run("select", bad_raw, *out, "--counts-layer", "X")
    assert code == 0, f"naming X reads X as it is: {err}"
    plain = counts_of([10, 10, 10, 10, 5], "p", seed=8)
    plain.write_h5ad(tmp_path / "plain.h5ad")
    fails_in_one_line(
        ["select", tmp_path / "plain.h5ad", *out, "--primary-only"],
        "--primary-only: no source has an obs column 'is_primary_data'",
    )
    plain.obs["is_primary_data"] = ["yes"] * plain.n_obs
    plain.write_h5ad(tmp_path / "yes.h5ad")
    fails_in_one_line(
        ["select", tmp_path / "yes.h5ad", *out],
        "yes.h5ad: obs column 'is_primary_data' holds 'yes'; expected True or False",
    )

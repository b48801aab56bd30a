"""TileDB-SOMA experiments as sources: each test writes its own small experiment with
tiledbsoma, as CELLxGENE Census lays one out (obs, ms['RNA'] with var and X['raw'])."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse as sp
from scurate._data.manifest import read_manifest
from scurate._data.sources import ReadOptions, open_sources
from scurate._engine.stages import source_readers
from scurate._plugins.registry import discover
from scurate.errors import InputError
from typer.testing import CliRunner

from conftest import TYPES, ensembl_ids, gene_symbols, make_counts, type_programs
from test_cli_select import fails_in_one_line, run

tiledbsoma = pytest.importorskip("tiledbsoma")  # an optional dependency (scurate[soma])
soma_io = pytest.importorskip("tiledbsoma.io")

runner = CliRunner()
TISSUES = np.array(["lung", "liver", "blood"])
N_CELLS = 360


def census_like(seed: int = 0, n: int = N_CELLS) -> ad.AnnData:
    """Raw counts of ``n`` cells of five types over three tissues, with CELLxGENE obs columns,
    Ensembl ids as var names and symbols in var['feature_name'], as Census has them."""
    rng = np.random.default_rng(seed)
    programs = type_programs(np.random.default_rng(42), len(TYPES))
    types = rng.integers(0, len(TYPES), size=n)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(np.asarray(TYPES)[types]),
            "tissue": pd.Categorical(TISSUES[rng.integers(0, 3, size=n)]),
            "assay": "10x 3' v3",
            "donor_id": pd.Categorical([f"d{i % 4}" for i in range(n)]),
        },
        index=[f"cell{i:04d}" for i in range(n)],
    )
    var = pd.DataFrame({"feature_name": gene_symbols()}, index=ensembl_ids())
    adata = ad.AnnData(make_counts(rng, programs, types), obs=obs, var=var)
    adata.obsm["X_emb"] = rng.normal(size=(n, 6)).astype(np.float32)
    return adata


def write_soma(adata: ad.AnnData, uri: Path, layer: str = "raw") -> Path:
    soma_io.from_anndata(str(uri), adata, measurement_name="RNA", X_layer_name=layer)
    return uri


def open_soma(paths: list[Path], read: ReadOptions | None = None) -> list[Any]:
    return list(open_sources(paths, source_readers(discover()), read))


@pytest.fixture
def adata() -> ad.AnnData:
    return census_like()


@pytest.fixture
def experiment(adata: ad.AnnData, tmp_path: Path) -> Path:
    return write_soma(adata, tmp_path / "lung_atlas")


def test_select_reads_an_experiment(adata: ad.AnnData, experiment: Path, tmp_path: Path) -> None:
    code, _, err = run("select", experiment, "--budget", "40", "-o", tmp_path / "out")
    assert code == 0, err
    manifest = read_manifest(tmp_path / "out" / "manifest.parquet")
    assert manifest.height == N_CELLS and manifest["selected"].sum() == 40
    assert set(manifest["dataset_id"]) == {"lung_atlas"}
    assert set(manifest["source"]) == {str(experiment.resolve())}
    assert manifest["soma_joinid"].to_list() == list(range(N_CELLS))
    assert manifest["cell_id"].to_list() == [f"lung_atlas/{n}" for n in adata.obs_names]
    assert manifest["tissue"].to_list() == adata.obs["tissue"].astype(str).tolist()
    np.testing.assert_allclose(manifest["n_counts"].to_numpy(), adata.X.sum(axis=1).A1)


def test_obs_filter_keeps_the_matching_cells(
    adata: ad.AnnData, experiment: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, _, err = run(
        "select", experiment, "-b", "20", "-o", out, "--obs-filter", "tissue == 'lung'"
    )
    assert code == 0, err
    manifest = read_manifest(out / "manifest.parquet")
    lung = np.flatnonzero(adata.obs["tissue"].to_numpy() == "lung")
    assert manifest["soma_joinid"].to_list() == lung.tolist()
    assert manifest["row"].to_list() == list(range(len(lung)))
    assert set(manifest["tissue"]) == {"lung"}
    assert manifest["cell_id"].to_list() == [f"lung_atlas/{n}" for n in adata.obs_names[lung]]


def test_h5ad_and_soma_give_the_same_manifest(adata: ad.AnnData, tmp_path: Path) -> None:
    (tmp_path / "h").mkdir()
    (tmp_path / "s").mkdir()
    adata.write_h5ad(tmp_path / "h" / "atlas.h5ad")
    write_soma(adata, tmp_path / "s" / "atlas")
    frames = []
    for kind in ("h", "s"):
        code, _, err = run("select", tmp_path / kind, "-b", "50", "-o", tmp_path / f"out_{kind}")
        assert code == 0, err
        frames.append(read_manifest(tmp_path / f"out_{kind}" / "manifest.parquet"))
    h5ad, soma = (f.drop("source", "row", "soma_joinid") for f in frames)
    assert h5ad["selected"].sum() == 50
    assert h5ad.equals(soma), "the same cells give the same embedding, scores and selection"
    assert frames[0]["soma_joinid"].null_count() == N_CELLS


def test_a_folder_with_an_h5ad_and_an_experiment_opens_both(
    adata: ad.AnnData, tmp_path: Path
) -> None:
    adata[:100].copy().write_h5ad(tmp_path / "first.h5ad")
    write_soma(adata[100:].copy(), tmp_path / "second")
    sources = open_soma([tmp_path])
    assert [(type(s).__name__, s.dataset_id, s.n_obs) for s in sources] == [
        ("H5adSource", "first", 100),
        ("SomaSource", "second", N_CELLS - 100),
    ]
    code, _, err = run("select", tmp_path, "-b", "30", "-o", tmp_path / "out")
    assert code == 0, err
    manifest = read_manifest(tmp_path / "out" / "manifest.parquet")
    by = manifest.group_by("dataset_id").agg(pl.col("soma_joinid").null_count(), pl.len())
    assert dict(zip(by["dataset_id"], by["soma_joinid"], strict=True)) == {
        "first": 100,
        "second": 0,
    }


def test_x_chunks_rows_and_obsm_follow_the_filtered_joinids(
    adata: ad.AnnData, experiment: Path
) -> None:
    (source,) = open_soma([experiment], ReadOptions(obs_filter="tissue != 'liver'"))
    keep = np.flatnonzero(adata.obs["tissue"].to_numpy() != "liver")
    assert source.soma_joinids.tolist() == keep.tolist()
    assert source.x_is_counts()
    expected = adata.X[keep].toarray()
    chunks = list(source.iter_x(chunk_rows=64))
    assert [start for start, _ in chunks] == list(range(0, len(keep), 64))
    np.testing.assert_array_equal(sp.vstack([c for _, c in chunks]).toarray(), expected)
    rows = np.array([0, 3, 4, 90, len(keep) - 1])
    np.testing.assert_array_equal(source.read_rows(rows).toarray(), expected[rows])
    reader = source.row_reader(rows)
    np.testing.assert_array_equal(reader(rows[1:3]).toarray(), expected[rows[1:3]])
    assert source.obsm_keys() == ["X_emb"]
    np.testing.assert_array_equal(source.read_obsm("X_emb"), adata.obsm["X_emb"][keep])
    obs = source.read_obs()
    assert obs.index.tolist() == adata.obs_names[keep].tolist()
    assert obs["cell_type"].astype(str).tolist() == adata.obs["cell_type"].iloc[keep].tolist()
    genes = source.read_genes()
    assert genes.names.tolist() == ensembl_ids().tolist()
    assert genes.columns["feature_name"].tolist() == gene_symbols().tolist()


def write_with_gaps(uri: Path) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """An experiment written as Census writes one, without from_anndata: no obs_id column,
    and obs and var joinids with gaps. Returns obs joinids, var joinids and X on them."""
    import pyarrow as pa

    rng = np.random.default_rng(3)
    obs_ids = np.sort(rng.choice(500, size=120, replace=False)).astype(np.int64)
    var_ids = np.sort(rng.choice(80, size=30, replace=False)).astype(np.int64)
    x = sp.random(120, 30, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 9)
    obs_schema = pa.schema([("soma_joinid", pa.int64()), ("tissue_general", pa.large_string())])
    var_schema = pa.schema(
        [
            ("soma_joinid", pa.int64()),
            ("feature_id", pa.large_string()),
            ("feature_name", pa.large_string()),
        ]
    )
    coo = x.tocoo()
    with tiledbsoma.Experiment.create(str(uri)) as exp:
        obs = exp.add_new_dataframe("obs", schema=obs_schema, domain=[(0, 499)])
        tissue = np.where(np.arange(120) % 2 == 0, "lung", "heart")
        obs.write(pa.table({"soma_joinid": obs_ids, "tissue_general": tissue}, schema=obs_schema))
        rna = exp.add_new_collection("ms").add_new_collection("RNA", tiledbsoma.Measurement)
        var = rna.add_new_dataframe("var", schema=var_schema, domain=[(0, 79)])
        var.write(
            pa.table(
                {
                    "soma_joinid": var_ids,
                    "feature_id": ensembl_ids(80)[var_ids],
                    "feature_name": gene_symbols(80)[var_ids],
                },
                schema=var_schema,
            )
        )
        raw = rna.add_new_collection("X").add_new_sparse_ndarray(
            "raw", type=pa.float32(), shape=(500, 80)
        )
        raw.write(
            pa.table(
                {
                    "soma_dim_0": obs_ids[coo.row],
                    "soma_dim_1": var_ids[coo.col],
                    "soma_data": coo.data,
                }
            )
        )
    return obs_ids, var_ids, x


def test_joinids_with_gaps_map_to_local_rows_and_genes(tmp_path: Path) -> None:
    obs_ids, _, x = write_with_gaps(tmp_path / "census")
    (source,) = open_soma([tmp_path / "census"], ReadOptions(obs_filter="tissue_general == 'lung'"))
    lung = np.arange(0, 120, 2)
    assert source.soma_joinids.tolist() == obs_ids[lung].tolist()
    assert source.obs_names.tolist() == [str(j) for j in obs_ids[lung]]
    assert source.n_vars == 30
    whole = sp.vstack([c for _, c in source.iter_x(chunk_rows=7)]).toarray()
    np.testing.assert_array_equal(whole, x[lung].toarray())
    assert source.obsm_keys() == []


def test_counts_layer_names_another_x_layer(adata: ad.AnnData, tmp_path: Path) -> None:
    normalized = adata.copy()
    normalized.X = sp.csr_matrix(normalized.X.multiply(0.25))
    uri = write_soma(adata, tmp_path / "exp")
    soma_io.add_X_layer(  # a second layer beside raw, as Census has "normalized"
        tiledbsoma.Experiment.open(str(uri), "w"), "RNA", "normalized", normalized.X
    )
    (raw,) = open_soma([uri])
    (norm,) = open_soma([uri], ReadOptions(counts_layer="normalized"))
    assert (raw.layer, norm.layer) == ("raw", "normalized")
    assert raw.x_is_counts() and not norm.x_is_counts()
    fails_in_one_line(
        ["select", uri, "-b", "5", "-o", tmp_path / "out", "--counts-layer", "counts"],
        str(uri.resolve()),
        "--counts-layer counts is not a layer of ms['RNA'].X (has: normalized, raw)",
    )


def test_a_soma_group_that_is_no_experiment(experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    fails_in_one_line(
        ["select", experiment / "ms", "-b", "5", "-o", out],
        "a TileDB-SOMA Collection, not a TileDB-SOMA Experiment",
    )
    fails_in_one_line(
        ["select", experiment / "obs", "-b", "5", "-o", out],
        "a TileDB-SOMA DataFrame, not a TileDB-SOMA Experiment",
    )


def test_bad_obs_filters(experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    fails_in_one_line(
        ["select", experiment, "-b", "5", "-o", out, "--obs-filter", "tissue == 'heart'"],
        str(experiment.resolve()),
        "--obs-filter \"tissue == 'heart'\" matches no cells",
    )
    fails_in_one_line(
        ["select", experiment, "-b", "5", "-o", out, "--obs-filter", "tissue = = 'lung'"],
        "--obs-filter \"tissue = = 'lung'\" is not a valid value filter on obs",
    )
    fails_in_one_line(
        ["select", experiment, "-b", "5", "-o", out, "--obs-filter", "organ == 'lung'"],
        "is not a valid value filter on obs",
        "organ",
    )
    assert not out.exists()


def test_obs_filter_without_an_experiment(
    adata: ad.AnnData, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    adata[:60].copy().write_h5ad(tmp_path / "alone.h5ad")
    lung = "tissue == 'lung'"
    fails_in_one_line(
        [
            "select",
            tmp_path / "alone.h5ad",
            "-b",
            "5",
            "-o",
            tmp_path / "out",
            "--obs-filter",
            lung,
        ],
        "--obs-filter \"tissue == 'lung'\" applies to TileDB-SOMA experiments only",
        "alone.h5ad",
    )
    write_soma(adata, tmp_path / "exp")
    with caplog.at_level(logging.WARNING):
        sources = open_soma([tmp_path], ReadOptions(obs_filter="tissue == 'lung'"))
    assert [s.n_obs for s in sources] == [
        60,
        int((adata.obs["tissue"] == "lung").sum()),
    ]
    assert "is not applied to 1 sources" in caplog.text and "alone.h5ad" in caplog.text


def test_without_tiledbsoma_one_line_says_how_to_install(
    experiment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tiledbsoma", None)  # import tiledbsoma fails
    readers = source_readers(discover())
    assert readers["tiledbsoma"].claims(experiment), "claimed from the markers on disk"
    with pytest.raises(InputError) as err:
        open_sources([experiment], readers)
    assert "pip install 'scurate[soma]'" in str(err.value) and "\n" not in str(err.value)


def test_claims_is_cheap_and_exact(experiment: Path, tmp_path: Path) -> None:
    claims = source_readers(discover())["tiledbsoma"].claims
    assert claims(experiment)
    assert not claims(experiment / "ms") and not claims(experiment / "obs")
    (tmp_path / "plain" / "obs").mkdir(parents=True)
    (tmp_path / "plain" / "ms").mkdir()
    assert not claims(tmp_path / "plain"), "obs and ms folders alone are no TileDB group"


def test_the_loader_reads_a_filtered_selection_back_by_joinid(
    adata: ad.AnnData, experiment: Path, tmp_path: Path
) -> None:
    import scurate
    from scurate.loader import CellLoader

    out = tmp_path / "out"
    code, _, err = run(
        "select", experiment, "-b", "30", "-o", out, "--obs-filter", "tissue == 'lung'"
    )
    assert code == 0, err
    loader = CellLoader(out, batch_size=8, labels=("tissue",))
    batches = list(loader)
    chosen = read_manifest(out / "manifest.parquet").filter("selected")
    by_id = dict(zip(chosen["cell_id"], chosen["soma_joinid"], strict=True))
    ids = [c for b in batches for c in b.cell_id]
    assert sorted(ids) == sorted(by_id)
    assert {t for b in batches for t in b.labels["tissue"]} == {"lung"}
    x = sp.vstack([b.X for b in batches]).toarray()
    joinids = np.array([by_id[c] for c in ids])
    assert loader.genes.tolist() == ensembl_ids().tolist()
    np.testing.assert_array_equal(x, adata.X[joinids].toarray())
    done = scurate.materialize(out, tmp_path / "shards", shard_size=16)
    assert done.n_cells == 30


def test_a_collection_of_experiments_opens_each(adata: ad.AnnData, tmp_path: Path) -> None:
    root = tmp_path / "census_data"  # as Census keeps homo_sapiens and mus_musculus
    with tiledbsoma.Collection.create(str(root)) as census:
        for name, part in (("homo_sapiens", adata[:200]), ("mus_musculus", adata[200:])):
            write_soma(part.copy(), root / name)
            with tiledbsoma.Experiment.open(str(root / name)) as exp:
                census.set(name, exp, use_relative_uri=True)
    sources = open_soma([root], ReadOptions(obs_filter="tissue == 'lung'"))
    assert [(s.dataset_id, s.n_obs) for s in sources] == [
        ("homo_sapiens", int((adata.obs["tissue"][:200] == "lung").sum())),
        ("mus_musculus", int((adata.obs["tissue"][200:] == "lung").sum())),
    ]

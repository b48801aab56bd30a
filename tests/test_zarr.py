"""AnnData zarr stores (``AnnData.write_zarr``) as sources: read in place like h5ad, found by
their suffix or their root attributes, the same manifest as the same data in h5ad."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import scurate
from scurate._data.anndata_store import ZarrSource
from scurate._data.sources import ReadOptions, open_sources
from scurate._engine.stages import source_readers
from scurate._plugins.registry import discover

from test_cli_select import fails_in_one_line
from test_counts import counts_of, deposit, redeposit


def write_zarr(adata: ad.AnnData, path: Path, zarr_format: int = 2) -> Path:
    with warnings.catch_warnings():  # anndata's notes on zarr formats to come, not ours
        warnings.simplefilter("ignore")
        with ad.settings.override(zarr_write_format=zarr_format):
            adata.write_zarr(path)
    return path


def both_labs() -> dict[str, ad.AnnData]:
    """A CELLxGENE-shaped deposit (counts in .raw, uns organism, is_primary_data) and a lab
    with its counts in a layer, a few of the deposit's cells among its own."""
    atlas = deposit(counts_of([60, 40, 30, 40, 6], "a", seed=11))
    lab = counts_of([50, 30, 20, 30, 0], "b", seed=12)
    copied = counts_of([60, 40, 30, 40, 6], "a", seed=11)[:12, :250].copy()
    lab = ad.concat([lab[:, :250].copy(), copied], merge="same", uns_merge="same")
    return {"atlas": atlas, "lab": redeposit(lab, primary=True)}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_zarr_store_gives_the_manifest_of_the_same_h5ad(tmp_path: Path, zarr_format: int) -> None:
    for name, adata in both_labs().items():
        (tmp_path / "h5ad").mkdir(exist_ok=True)
        adata.write_h5ad(tmp_path / "h5ad" / f"{name}.h5ad")
        write_zarr(adata, tmp_path / "zarr" / f"{name}.zarr", zarr_format)
    from_h5ad = scurate.select([tmp_path / "h5ad"], 60, seed=3)
    from_zarr = scurate.select([tmp_path / "zarr"], 60, seed=3)
    assert from_zarr.manifest["source"].str.ends_with(".zarr").all()
    assert from_zarr.manifest.drop("source").equals(from_h5ad.manifest.drop("source"))
    manifest = from_zarr.manifest
    assert manifest["organism"].unique().to_list() == ["Homo sapiens"], "uns, read from zarr"
    assert manifest.filter(pl.col("dataset_id") == "lab")["exact_dup_of"].drop_nulls().len() == 12
    assert manifest["is_primary_data"].all()
    assert from_zarr.report["embedding"] == from_h5ad.report["embedding"]
    assert from_zarr.report["scores"]["exact"] == from_h5ad.report["scores"]["exact"]
    assert from_zarr.report["embedding"]["counts_from"] == {
        "atlas": "raw",
        "lab": "layers['counts']",
    }


@pytest.mark.parametrize("layout", ["csr", "csc", "dense"])
def test_zarr_counts_in_chunks_whatever_the_layout(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(1)
    x = sp.random(500, 40, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 10)
    stored = {"csr": x, "csc": x.tocsc(), "dense": x.toarray()}[layout]
    write_zarr(ad.AnnData(stored), tmp_path / "x.zarr", zarr_format=3)
    source = ZarrSource(tmp_path / "x.zarr", "x")
    assert source.counts_from == "X" and source.n_vars == 40
    chunks = list(source.iter_x(chunk_rows=150))
    assert [start for start, _ in chunks] == [0, 150, 300, 450]
    np.testing.assert_array_equal(sp.vstack([c for _, c in chunks]).toarray(), x.toarray())
    rows = np.array([0, 1, 2, 90, 499])
    np.testing.assert_array_equal(source.read_rows(rows).toarray(), x[rows].toarray())
    reader = source.row_reader(rows)
    np.testing.assert_array_equal(reader(rows[1:3]).toarray(), x[rows[1:3]].toarray())


def test_a_folder_is_a_store_by_its_suffix_or_its_attributes(tmp_path: Path) -> None:
    adata = counts_of([10, 10, 10, 10, 2], "c", seed=13)
    write_zarr(adata, tmp_path / "data" / "named.zarr")
    write_zarr(adata, tmp_path / "data" / "nested" / "plain_folder", zarr_format=3)
    adata.write_h5ad(tmp_path / "data" / "nested" / "file.h5ad")
    readers = source_readers(discover())
    found = open_sources([tmp_path / "data"], readers)
    assert [(s.dataset_id, type(s).__name__) for s in found] == [
        ("named", "ZarrSource"),
        ("file", "H5adSource"),
        ("plain_folder", "ZarrSource"),
    ]
    alone = open_sources([tmp_path / "data" / "nested" / "plain_folder"], readers)
    assert alone[0].dataset_id == "plain_folder" and alone[0].n_obs == 42
    assert open_sources([tmp_path / "data" / "named.zarr"], readers)[0].n_vars == 300
    layer = open_sources(
        [tmp_path / "data" / "named.zarr"], readers, ReadOptions(counts_layer="X")
    )[0]
    assert layer.counts_from == "X"


def test_bad_zarr_stores_are_one_line(tmp_path: Path) -> None:
    out = ["-b", "5", "-o", str(tmp_path / "o")]
    (tmp_path / "empty.zarr").mkdir()
    fails_in_one_line(["select", tmp_path / "empty.zarr", *out], "empty.zarr: cannot read as zarr")
    adata = counts_of([10, 10, 10, 10, 2], "c", seed=14)
    store = write_zarr(adata, tmp_path / "damaged.zarr")
    for chunk in (store / "X" / "data").iterdir():
        if chunk.is_file() and not chunk.name.startswith("."):
            chunk.write_bytes(chunk.read_bytes()[:20])
    fails_in_one_line(["select", store, *out], "damaged.zarr: cannot read X as zarr")
    shutil.rmtree(store)
    write_zarr(adata, store)
    fails_in_one_line(
        ["select", store, *out, "--counts-layer", "spliced"],
        "damaged.zarr: --counts-layer spliced: no such layer (layers: none)",
    )

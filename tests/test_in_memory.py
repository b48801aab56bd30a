"""AnnData objects in memory as sources (scanpy's way): select, annotate, to_anndata."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import polars as pl
import pytest
import scurate
from scurate.errors import InputError

from conftest import TYPES, make_adata, type_programs, write_two_labs


def _two_labs_in_memory(root: Path) -> tuple[ad.AnnData, ad.AnnData, list[Path]]:
    paths = write_two_labs(root)
    return ad.read_h5ad(paths[0]), ad.read_h5ad(paths[1]), paths


def _quiet(stage: str, done: int, total: int) -> None:
    return None


def test_in_memory_gives_the_manifest_the_files_give(tmp_path: Path) -> None:
    a, b, paths = _two_labs_in_memory(tmp_path)
    from_files = scurate.select(paths, 40, progress=_quiet)
    in_memory = scurate.select({"lab_a": a, "lab_b": b}, 40, progress=_quiet)
    same = [c for c in from_files.manifest.columns if c != "source"]
    assert in_memory.manifest.select(same).equals(from_files.manifest.select(same))
    assert in_memory.manifest["source"].unique().sort().to_list() == [
        "anndata:lab_a",
        "anndata:lab_b",
    ]
    described = in_memory.report["parameters"]["sources"]
    assert described[0] == "anndata:lab_a (898 cells x 300 genes, in memory)"


def test_unnamed_objects_and_paths_mix_with_unique_ids(tmp_path: Path) -> None:
    a, b, paths = _two_labs_in_memory(tmp_path)
    result = scurate.select([a, paths[1], b], 30, progress=_quiet)
    ids = result.manifest["dataset_id"].unique(maintain_order=True).to_list()
    assert ids == ["adata", "lab_b", "adata-2"]
    # the in-memory copy of lab_b holds the file's cells: its counts are found as exact copies
    copies = result.manifest.filter(pl.col("dataset_id") == "adata-2")["exact_dup_of"]
    assert copies.null_count() == 0
    assert copies.str.starts_with("lab_b/").all()


def test_annotate_writes_selection_and_scores_into_obs(tmp_path: Path) -> None:
    a, b, _ = _two_labs_in_memory(tmp_path)
    result = scurate.select([a, b], 50, progress=_quiet)
    assert scurate.annotate(a, result) is a
    rows = result.manifest.filter(pl.col("dataset_id") == "adata").sort("row")
    assert a.obs["selected"].dtype == bool
    assert a.obs["selected"].to_numpy().tolist() == rows["selected"].to_list()
    ranks = a.obs["selection_rank"]
    assert ranks.notna().sum() == rows["selected"].sum()
    np.testing.assert_array_equal(
        ranks.dropna().to_numpy(dtype=np.int64),
        rows.filter("selected")["selection_rank"].to_numpy(),
    )
    np.testing.assert_allclose(a.obs["density"].to_numpy(), rows["density"].to_numpy())
    assert np.isnan(a.obs["weight"].to_numpy()[~a.obs["selected"].to_numpy()]).all()
    assert "novelty" not in a.obs  # no reference: a column no stage filled is not written
    # a fresh object with the same cells is found by its obs names
    again = ad.AnnData(obs=b.obs.copy())
    result.annotate(again)
    assert (
        again.obs["selected"].sum()
        == result.manifest.filter(pl.col("dataset_id") == "adata-2")["selected"].sum()
    )


def test_to_anndata_has_the_selection_on_one_gene_order(tmp_path: Path) -> None:
    a, b, _ = _two_labs_in_memory(tmp_path)
    result = scurate.select({"lab_a": a, "lab_b": b}, 60, progress=_quiet)
    out = result.to_anndata()
    chosen = result.selected
    assert out.n_obs == 60
    assert out.obs_names.tolist() == chosen["cell_id"].to_list()
    # lab_b names genes by Ensembl id and keeps symbols in a column: they meet on symbols
    assert out.n_vars == 270 and out.uns["scurate"]["gene_id_kind"] == "symbol"
    assert out.obsm["X_scurate"].shape == (60, result.report["embedding"]["n_dims"])
    first = chosen.row(0, named=True)
    source = a if first["dataset_id"] == "lab_a" else b
    symbols = (
        source.var["gene_symbols"].to_numpy()
        if "gene_symbols" in source.var
        else source.var_names.to_numpy()
    )
    where = {g: j for j, g in enumerate(symbols)}
    expected = source.X[first["row"]].toarray().ravel()[[where[g] for g in out.var_names]]
    np.testing.assert_array_equal(out.X[0].toarray().ravel(), expected)
    assert out.obs["cell_type"].tolist() == chosen["cell_type"].to_list()
    assert out.obs["selection_rank"].tolist() == list(range(60))


def test_counts_are_found_in_raw_of_a_normalized_object() -> None:
    rng = np.random.default_rng(3)
    programs = type_programs(np.random.default_rng(42), len(TYPES))
    counts = make_adata(rng, programs, TYPES, [80, 60, 40, 60, 10], prefix="c_")
    normalized = counts.copy()
    normalized.raw = counts
    totals = np.asarray(normalized.X.sum(axis=1)).ravel()
    normalized.X = normalized.X.multiply(1e4 / totals[:, None]).tocsr().log1p()
    result = scurate.select({"norm": normalized, "raw": counts}, 20, progress=_quiet)
    assert result.report["embedding"]["normalized_sources"] == []
    # the same counts, read from .raw in one and X in the other: every cell is an exact copy
    copies = result.manifest.filter(pl.col("dataset_id") == "raw")["exact_dup_of"]
    assert copies.null_count() <= 2  # cells with too few genes are not called copies


def _raw_lacking_a_gene(adata: ad.AnnData) -> ad.AnnData:
    out = adata.copy()
    out.raw = adata[:, 1:].copy()
    out.X = out.X.multiply(0.5).tocsr()  # not counts: the raw would be read
    return out


def test_bad_in_memory_input_is_one_line() -> None:
    rng = np.random.default_rng(0)
    programs = type_programs(rng, len(TYPES))
    good = make_adata(rng, programs, TYPES, [20, 20, 20, 20, 20], prefix="g_")
    twice = good.copy()
    twice.obs_names = ["same"] * twice.n_obs
    cases: list[tuple[object, dict[str, object], str]] = [
        (good[:0].copy(), {}, "AnnData 'adata': has no cells"),
        (twice, {}, "AnnData 'adata': obs names are not unique ('same' appears 100 times"),
        (good, {"counts_layer": "spliced"}, "AnnData 'adata': no counts_layer='spliced'"),
        (_raw_lacking_a_gene(good), {}, "AnnData 'adata': .raw lacks 1 of X's 300 genes"),
        ({"lab": "not-an-adata"}, {}, "sources['lab']: str is not an AnnData"),
        ([good, 3], {}, "sources: int is not a path or an AnnData"),
        (42, {}, "sources: expected paths, AnnData objects or a mapping"),
    ]
    for given, options, text in cases:
        with pytest.raises(InputError) as err:
            scurate.select(given, 5, progress=_quiet, **options)  # type: ignore[arg-type]
        assert str(err.value).startswith(text), str(err.value)
        assert "\n" not in str(err.value)
    result = scurate.select(good, 5, progress=_quiet)
    stranger = ad.AnnData(obs=good.obs.iloc[:10].copy())
    with pytest.raises(InputError, match="annotate: this AnnData .10 cells. is none of"):
        scurate.annotate(stranger, result)


def test_a_loader_on_an_in_memory_selection_says_to_use_to_anndata(tmp_path: Path) -> None:
    a, _, _ = _two_labs_in_memory(tmp_path)
    scurate.select_to_dir(a, 10, out=tmp_path / "out", progress=_quiet)
    with pytest.raises(InputError, match=r"selected from an AnnData in memory .*to_anndata\(\)"):
        scurate.CellLoader(tmp_path / "out")


def test_loader_root_finds_sources_moved_together(tmp_path: Path) -> None:
    first = tmp_path / "first"
    (first / "data").mkdir(parents=True)
    paths = write_two_labs(first / "data")
    scurate.select_to_dir(paths, 40, out=first / "out", progress=_quiet)
    moved = tmp_path / "second"
    first.rename(moved)
    with pytest.raises(InputError, match=r"source not found .*root= names the folder"):
        scurate.CellLoader(moved / "out")
    loader = scurate.CellLoader(moved / "out", root=moved / "data", shuffle=False)
    assert loader.n_cells == 40
    assert set(loader.sources.values()) == {str(moved / "data" / p.name) for p in paths}
    assert sum(len(batch) for batch in loader) == 40

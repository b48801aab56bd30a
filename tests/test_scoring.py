"""Scores in select: copies set aside, near-duplicate groups, density, overlap, novelty."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import scurate
from scurate._compute.reference import load_reference
from scurate._compute.scoring import dataset_overlap, keep_mask, neighbour_scores
from scurate.errors import InputError, OptionError

from conftest import TYPES, make_adata, write_h5ad


@pytest.fixture
def redeposited(tmp_path: Path, programs: np.ndarray) -> list[Path]:
    """atlas (458 cells) and redeposit: 80 of atlas's cells under new names, plus 20 others."""
    rng = np.random.default_rng(11)
    atlas = make_adata(rng, programs, TYPES, [150, 100, 80, 120, 8], prefix="a")
    others = make_adata(rng, programs, TYPES, [10, 10, 0, 0, 0], prefix="o")
    rows = rng.choice(atlas.n_obs, 80, replace=False)
    copied = atlas[rows].copy()
    copied.obs_names = [f"r{i}" for i in range(80)]
    redeposit = ad.concat([copied, others])
    return [
        write_h5ad(atlas, tmp_path / "atlas.h5ad"),
        write_h5ad(redeposit, tmp_path / "redeposit.h5ad"),
    ]


def test_select_never_takes_two_copies_and_reports_the_overlap(redeposited: list[Path]) -> None:
    pool = 458 + 100
    sel = scurate.select(redeposited, pool - 80, seed=1, qc="off")  # duplicates only
    chosen = sel.selected
    assert chosen.height == pool - 80
    assert chosen["exact_dup_of"].null_count() == chosen.height  # no copy was selected
    copies = sel.manifest.filter(pl.col("exact_dup_of").is_not_null())
    assert copies.height == 80
    assert set(copies["dataset_id"]) == {"redeposit"}
    assert copies["exact_dup_of"].str.starts_with("atlas/").all()
    first = sel.report["overlap"][0]
    assert (first["dataset"], first["in_dataset"]) == ("redeposit", "atlas")
    assert first["exact"] == 80
    assert first["fraction"] == pytest.approx(0.8)
    assert first["contained"]
    assert sel.report["duplicates"]["set_aside"] == 80
    per = {row["dataset_id"]: row["duplicates_set_aside"] for row in sel.report["datasets"]}
    assert per == {"atlas": 0, "redeposit": 80}


def test_budget_beyond_what_is_left_after_duplicates(redeposited: list[Path]) -> None:
    with pytest.raises(OptionError, match="budget=500 is more than the 478 cells left after"):
        scurate.select(redeposited, 500, qc="off")
    sel = scurate.select(redeposited, 500, keep_duplicates=True, qc="off")
    assert sel.selected.height == 500
    assert sel.report["duplicates"]["set_aside"] == 0
    assert sel.manifest["exact_dup_of"].drop_nulls().len() == 80  # still scored


def with_embedding(tmp_path: Path, programs: np.ndarray, emb: np.ndarray, name: str) -> Path:
    rng = np.random.default_rng(len(emb))
    cells = make_adata(rng, programs, TYPES, [len(emb), 0, 0, 0, 0], prefix=f"{name}_")
    cells.obsm["X_emb"] = emb.astype(np.float32)
    return write_h5ad(cells, tmp_path / f"{name}.h5ad")


def test_near_duplicates_group_and_one_per_group_is_kept(
    tmp_path: Path, programs: np.ndarray
) -> None:
    rng = np.random.default_rng(12)
    emb = rng.normal(size=(300, 10))
    emb[290:300] = emb[:10] + rng.normal(scale=1e-3, size=(10, 10))  # ten near copies
    emb[280:290] = emb[:10] + rng.normal(scale=2e-3, size=(10, 10))  # and a third member each
    path = with_embedding(tmp_path, programs, emb, "lab")
    sel = scurate.select([path], 50, obsm_key="X_emb")
    group = sel.manifest["near_dup_group"].to_numpy()
    for i in range(10):
        assert group[i] == group[280 + i] == group[290 + i] == i
    assert np.isnan(group[10:280].astype(float)).all()  # null outside the planted groups
    assert sel.report["duplicates"]["set_aside"] == 20
    chosen = sel.selected["row"].to_numpy()
    assert not set(chosen) & set(range(280, 300))
    near = sel.report["scores"]["near"]
    assert near["eps"] == pytest.approx(0.25 * near["median_nn_distance"])


def test_neighbour_scores_eps_options_and_ivf(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    x[1990:] = x[:10]
    flat = neighbour_scores(x)
    ivf = neighbour_scores(x, index_factory="IVF6,Flat")  # the rule probes 6 lists: all of them
    assert ivf.info["index"]["factory"] == "IVF6,Flat" and ivf.info["index"]["nprobe"] == 6
    np.testing.assert_array_equal(flat.near_dup_group, ivf.near_dup_group)  # nprobe = nlist
    assert (flat.near_dup_group[1990:] == np.arange(10)).all()
    with pytest.raises(OptionError, match="near_dup_eps=100.0: above the median"):
        neighbour_scores(x, eps=100.0)
    with pytest.raises(OptionError, match="near_dup_eps=-1.0: must be a distance"):
        neighbour_scores(x, eps=-1.0)
    with pytest.raises(OptionError, match="index_factory='IVFbogus': FAISS cannot build it"):
        neighbour_scores(x, index_factory="IVFbogus")
    # a dense cluster reads as dense, isolated cells as sparse
    y = np.vstack([rng.normal(scale=0.1, size=(200, 8)), rng.normal(scale=5, size=(200, 8))])
    density = neighbour_scores(y.astype(np.float32)).density
    assert np.median(density[:200]) > 5 > 0.5 > np.median(density[200:]) / 2


def test_keep_mask_and_overlap_on_known_groups() -> None:
    dup_of = np.array([-1, 0, -1, -1, -1, -1])
    groups = np.array([0, 0, -1, 3, 3, 3])
    assert keep_mask(dup_of, groups).tolist() == [True, False, True, True, False, False]
    table = dataset_overlap(np.array(["a", "b", "b", "a", "b", "b"]), dup_of, groups)
    by = {(r["dataset"], r["in_dataset"]): r for r in table}
    assert (by["b", "a"]["exact"], by["b", "a"]["near"]) == (1, 2)
    assert by["b", "a"]["fraction"] == 0.75
    assert (by["a", "b"]["exact"], by["a", "b"]["near"]) == (1, 1)


def brute_nearest(base: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((queries[:, None, :].astype(np.float64) - base[None].astype(np.float64)) ** 2).sum(-1)
    return np.sqrt(d2.min(1)), d2.argmin(1)


def test_reference_index_novelty_and_kcenter_start(tmp_path: Path, programs: np.ndarray) -> None:
    rng = np.random.default_rng(14)
    corpus = rng.normal(size=(400, 6))
    new = np.vstack([rng.normal(size=(150, 6)), rng.normal(loc=6.0, size=(10, 6))])
    corpus_path = with_embedding(tmp_path, programs, corpus, "corpus")
    new_path = with_embedding(tmp_path, programs, new, "new")
    info = scurate.build_index([corpus_path], out=tmp_path / "corpus.idx", obsm_key="X_emb")
    assert info["n_cells"] == 400 and (tmp_path / "corpus.idx" / "index.faiss").exists()
    sel = scurate.select(
        [new_path], 12, obsm_key="X_emb", reference=[tmp_path / "corpus.idx"], policy="kcenter"
    )
    dist, where = brute_nearest(corpus.astype(np.float32), new.astype(np.float32))
    np.testing.assert_allclose(sel.manifest["novelty"].to_numpy(), dist, rtol=1e-4, atol=1e-4)
    names = load_reference(tmp_path / "corpus.idx").cell_ids
    assert sel.manifest["nearest_reference"].to_list() == list(names[where])
    assert sel.manifest["nearest_reference"][0].startswith("corpus/corpus_")
    # the first picks are the outlying cells, farthest from everything the corpus has
    assert int(sel.selected["row"][0]) == int(np.argmax(dist))
    assert 150 <= int(np.argmax(dist)) < 160  # one of the planted outliers
    assert sel.report["policy_info"]["starts_from"] == "the reference corpus"
    # the corpus given as files gives the same scores as the saved index
    again = scurate.select(
        [new_path], 12, obsm_key="X_emb", reference=[corpus_path], policy="kcenter"
    )
    assert again.manifest["novelty"].to_list() == sel.manifest["novelty"].to_list()


def test_reference_pca_model_is_saved_and_reused(tmp_path: Path, two_labs: list[Path]) -> None:
    scurate.build_index([two_labs[0]], out=tmp_path / "a.idx", seed=3)
    # kcenter from the reference depends on no seed: the same picks whatever the seed
    saved = scurate.select([two_labs[1]], 20, reference=[tmp_path / "a.idx"], policy="kcenter")
    built = scurate.select([two_labs[1]], 20, reference=[two_labs[0]], seed=3, policy="kcenter")
    np.testing.assert_allclose(
        saved.manifest["novelty"].to_numpy(), built.manifest["novelty"].to_numpy(), rtol=1e-5
    )
    assert saved.report["embedding"]["model"] == "the reference's PCA"
    assert saved.selected["cell_id"].to_list() == built.selected["cell_id"].to_list()


def test_reference_bad_input(tmp_path: Path, programs: np.ndarray, two_labs: list[Path]) -> None:
    scurate.build_index([two_labs[0]], out=tmp_path / "a.idx")
    with pytest.raises(InputError, match="embedded with PCA of its counts, but obsm_key='X_emb'"):
        scurate.select([two_labs[1]], 5, obsm_key="X_emb", reference=[tmp_path / "a.idx"])
    (tmp_path / "a.idx" / "index.faiss").write_bytes(b"not an index")
    with pytest.raises(InputError, match="a.idx: cannot read the scurate index"):
        scurate.select([two_labs[1]], 5, reference=[tmp_path / "a.idx"])
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="exists and is not a scurate index"):
        scurate.build_index([two_labs[0]], out=tmp_path / "taken")
    wide = with_embedding(tmp_path, programs, np.zeros((30, 4)) + np.arange(30)[:, None], "wide")
    narrow = with_embedding(tmp_path, programs, np.arange(60).reshape(30, 2), "narrow")
    with pytest.raises(InputError, match="its cells have 4 dimensions but the new cells have 2"):
        scurate.select([narrow], 5, obsm_key="X_emb", reference=[wide])


def test_score_writes_the_neighbour_table(tmp_path: Path, redeposited: list[Path]) -> None:
    scored = scurate.score_to_dir(redeposited, out=tmp_path / "scores")
    table = pl.read_parquet(tmp_path / "scores" / "neighbours.parquet")
    assert table.columns == ["cell_id", "dataset_id", "nn_distance", "nn_cell_id"]
    assert table.height == 558
    copies = scored.manifest.filter(pl.col("exact_dup_of").is_not_null())
    by_id = dict(zip(table["cell_id"], table["nn_distance"], strict=True))
    assert max(by_id[c] for c in copies["cell_id"]) < 1e-3
    report = json.loads((tmp_path / "scores" / "report.json").read_text())
    assert report["overlap"][0]["dataset"] == "redeposit"
    assert "selected" not in report
    assert scored.manifest["selected"].null_count() == scored.manifest.height


def test_cells_without_counts_are_scored_on_the_embedding(
    tmp_path: Path, programs: np.ndarray
) -> None:
    emb = np.random.default_rng(15).normal(size=(100, 5))
    path = with_embedding(tmp_path, programs, emb, "lab")
    cells = ad.read_h5ad(path)
    cells.X = sp.csr_matrix(np.log1p(cells.X.toarray()))
    cells.write_h5ad(path)
    sel = scurate.select([path], 10, obsm_key="X_emb")
    skipped = sel.report["scores"]["exact"]["skipped_sources"]
    assert skipped["lab"].startswith("no integer counts in X, .raw.X or layers['counts']")
    assert sel.manifest["density"].null_count() == 0


def test_search_keys_sort_as_faiss_ranks_and_read_back() -> None:
    from scurate._compute.faiss_index import MISSING_D2, _from_keys, _keys

    d2 = np.array([[-0.5, 0.0, 0.0, 2.5, MISSING_D2]], dtype=np.float32)
    rows = np.array([[9, 4, 3, 0, -1]], dtype=np.int64)
    keys = _keys(d2, rows)
    shuffled = keys[:, [3, 0, 4, 2, 1]]
    back_d2, back_rows = _from_keys(np.sort(shuffled, axis=1))
    np.testing.assert_array_equal(back_d2, [[-0.5, 0.0, 0.0, 2.5, MISSING_D2]])
    np.testing.assert_array_equal(back_rows, [[9, 3, 4, 0, -1]])  # a tie: the lower row first

"""scurate bench: the split, both proxies, the label-free metrics, the summary against random,
every value held out in turn, strata, obs columns, BLAS threads, no leakage from the test cells
into any selection, the outputs, and one line per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse as sp
from scurate._bench.options import parse_budgets
from scurate._bench.proxies import COVERAGE_K, LABEL_FREE, Features, label_free
from scurate._bench.run import bench
from scurate._bench.summary import summarize, tally
from scurate._data.anndata_store import H5adSource
from scurate._data.sources import RowSubset
from scurate.cli import app
from typer.testing import CliRunner

from conftest import make_adata, type_programs

runner = CliRunner()
TYPES = ("grp_a", "grp_b", "grp_c", "grp_r")  # names no ontology term matches


def run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def rare_pool(tmp_path: Path) -> list[Path]:
    """A pool with 6 cells of a distinct rare type R (0.5 %) and a test lab where R is a
    quarter of the cells: at 24 cells random mostly misses R, a covering policy finds it."""
    rng = np.random.default_rng(7)
    programs = type_programs(rng, len(TYPES))
    pool = make_adata(rng, programs, TYPES, [400, 400, 400, 6], prefix="p_")
    test = make_adata(rng, programs, TYPES, [60, 60, 60, 60], prefix="t_")
    paths = [tmp_path / "pool.h5ad", tmp_path / "test.h5ad"]
    pool.write_h5ad(paths[0])
    test.write_h5ad(paths[1])
    return paths


def mixed_donors(path: Path, seed: int = 7) -> Path:
    """One file, three donors of the same three balanced, overlapping types, rows shuffled so
    the held-out donor's cells sit between the pool's."""
    rng = np.random.default_rng(seed)
    programs = type_programs(rng, 3, boost=(1.3, 2.0))  # 1.3-2x markers: types overlap
    parts = []
    for donor, n in (("D1", 300), ("D2", 300), ("D3", 100)):
        part = make_adata(rng, programs, TYPES[:3], [n, n, n], prefix=f"{donor}_")
        part.obs["donor"] = donor
        parts.append(part)
    merged = ad.concat(parts)
    merged = merged[rng.permutation(merged.n_obs)].copy()
    merged.write_h5ad(path)
    return path


def by_policy(result_summary: list[dict], policy: str) -> dict:
    (row,) = [r for r in result_summary if r["policy"] == policy]
    return row


def test_random_loses_where_a_rare_type_must_be_covered(rare_pool: list[Path]) -> None:
    result = bench(
        rare_pool,
        holdout="dataset_id=test",
        label="cell_type",
        budgets="24",
        policies="kcenter",
        seeds=10,  # all 6 rare cells stay in the pool: at 5 seeds one lucky random draw tied it
    )
    assert result.info["split"]["rare_labels"] == ["grp_r"]
    random = by_policy(result.summary, "random")
    kcenter = by_policy(result.summary, "kcenter")
    assert random["rare_recall"]["mean"] < 0.4
    assert kcenter["rare_recall"]["mean"] > 0.6
    assert kcenter["vs_random"]["rare_recall"]["verdict"] == "won"
    assert kcenter["vs_random"]["macro_f1"]["verdict"] == "won"
    covered = {r["policy"]: [] for r in result.records}
    for r in result.records:
        covered[r["policy"]].append(r["labels_covered"])
    assert all(c == 4 for c in covered["kcenter"])  # R found at every seed
    assert sum(c == 4 for c in covered["random"]) <= 2  # random misses it at most seeds


def test_random_does_not_lose_on_a_well_mixed_pool(tmp_path: Path) -> None:
    path = mixed_donors(tmp_path / "mixed.h5ad")
    result = bench(
        [path], holdout="donor=D3", label="cell_type", budgets="0.05", policies="kcenter", seeds=5
    )
    kcenter = by_policy(result.summary, "kcenter")
    random = by_policy(result.summary, "random")
    assert kcenter["vs_random"]["macro_f1"]["verdict"] in ("tied", "lost")
    assert kcenter["vs_random"]["accuracy"]["verdict"] in ("tied", "lost")
    # random sits nearer the typical held-out cell; kcenter spends its budget on the edges
    assert kcenter["vs_random"]["test_to_selected_mean"]["verdict"] == "lost"
    assert random["macro_f1"]["mean"] > 0.7
    assert result.info["split"]["rare_labels"] == []
    assert all(r["rare_recall"] is None for r in result.records)


def test_changing_the_test_cells_changes_no_selection(tmp_path: Path) -> None:
    path = mixed_donors(tmp_path / "mixed.h5ad")
    options = {
        "holdout": "donor=D3",
        "label": "cell_type",
        "budgets": "0.05,60",
        "policies": "kcenter,facility,sketch",
        "seeds": 2,
    }
    before = bench([path], **options)
    data = ad.read_h5ad(path)
    test = (data.obs["donor"] == "D3").to_numpy()
    rng = np.random.default_rng(1)
    x = data.X.toarray()
    x[test] = rng.poisson(3.0, size=(int(test.sum()), data.n_vars))  # other counts
    x[np.flatnonzero(test)[:5]] = 0.5  # and a few rows that are not counts at all
    data.X = sp.csr_matrix(x)
    labels = data.obs["cell_type"].astype(str).to_numpy()
    labels[test] = np.where(labels[test] == "grp_a", "grp_b", "grp_a")
    data.obs["cell_type"] = pd.Categorical(labels)
    data.write_h5ad(path)
    after = bench([path], **options)
    assert before.selections.equals(after.selections)
    assert before.info["pool"] == after.info["pool"]  # the embedding fitted on the pool only
    # the test cells did change: what the selections teach about them did
    assert [r["test_to_selected_mean"] for r in before.records] != [
        r["test_to_selected_mean"] for r in after.records
    ]


def test_test_labels_absent_from_the_pool_are_reported_not_scored(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    programs = type_programs(rng, 4)
    pool = make_adata(rng, programs, TYPES, [200, 200, 200, 0], prefix="p_")
    test = make_adata(rng, programs, TYPES, [40, 40, 40, 15], prefix="t_")
    test.obs["cell_type"] = test.obs["cell_type"].cat.add_categories(["unused"])
    test.obs.iloc[:3, 0] = np.nan
    pool.write_h5ad(tmp_path / "pool.h5ad")
    test.write_h5ad(tmp_path / "test.h5ad")
    result = bench([tmp_path], holdout="dataset_id=test", label="cell_type", budgets="30", seeds=1)
    split = result.info["split"]
    assert split["test_labels_not_scored"] == {"(no label)": 3, "grp_r": 15}
    assert split["n_test"] == 135 and split["n_test_scored"] == 117
    assert result.info["proxies"]["scored_labels"] == ["grp_a", "grp_b", "grp_c"]
    assert set(result.records[0]["recall_per_label"]) == {"grp_a", "grp_b", "grp_c"}


def test_cli_writes_json_html_and_selections(rare_pool: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code, stdout, err = run(
        "bench",
        *rare_pool,
        "--holdout",
        "dataset_id=test",
        "--label",
        "cell_type",
        "--budgets",
        "0.02,50",
        "--policies",
        "kcenter,sketch",
        "--param",
        "sketch:boxes=40",
        "--seeds",
        "2",
        "-o",
        out,
    )
    assert code == 0, err
    assert "kcenter" in stdout and "sketch" in stdout and "wrote" in stdout
    payload = json.loads((out / "bench.json").read_text())
    assert {"records", "summary", "full_pool", "split", "parameters"} <= set(payload)
    assert len(payload["records"]) == 3 * 2 * 2  # policies x budgets x seeds
    record = payload["records"][0]
    for key in (
        "policy",
        "budget",
        "n_selected",
        "seed",
        "macro_f1",
        "accuracy",
        "rare_recall",
        "knn_transfer_f1",
        "test_to_selected_mean",
        "test_to_selected_max",
        "knn_coverage",
        "holdout",
    ):
        assert key in record
    assert {r["budget"] for r in payload["records"]} == {0.02, 50}  # as given
    assert {r["n_selected"] for r in payload["records"]} == {24, 50}  # 2 % of 1206 cells
    assert payload["parameters"]["params"]["sketch"] == {"boxes": "40"}
    assert payload["parameters"]["params"]["kcenter"] == {}
    for row in payload["summary"]:
        assert row["macro_f1"]["ci_low"] <= row["macro_f1"]["mean"] <= row["macro_f1"]["ci_high"]
        assert ("vs_random" in row) == (row["policy"] != "random")
    html = (out / "bench.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("<svg") == 7
    # drawn by matplotlib in report.html's look, one tagged figure per metric
    assert 'data-figure="bench-macro_f1"' in html and 'data-figure="bench-knn_coverage"' in html
    assert "whole pool" in html and "(rare)" in html
    picks = pl.read_parquet(out / "selections.parquet")
    assert picks.height == 3 * (24 + 50) * 2
    assert picks.group_by("policy", "budget", "seed").len()["len"].to_list().count(50) == 6
    assert not list(out.glob(".*partial"))


def test_summary_interval_and_paired_difference() -> None:
    records = [
        {"policy": p, "budget": 0.1, "n_selected": 10, "seed": s, "recall_per_label": {"x": v}}
        | {m: v for m in ("macro_f1", "accuracy", "knn_transfer_f1", "knn_coverage")}
        | {"rare_recall": None, "test_to_selected_mean": 1 - v, "test_to_selected_max": 2.0}
        for p, values in (("random", [0.5, 0.6, 0.7]), ("kcenter", [0.7, 0.8, 0.9]))
        for s, v in enumerate(values)
    ]
    rows = summarize(records)
    kcenter = by_policy(rows, "kcenter")
    assert kcenter["macro_f1"]["mean"] == pytest.approx(0.8)
    # t(0.975, 2) = 4.303; sd = 0.1; half width 4.303 * 0.1 / sqrt(3)
    assert kcenter["macro_f1"]["ci_high"] - 0.8 == pytest.approx(4.3027 * 0.1 / 3**0.5, rel=1e-3)
    diff = kcenter["vs_random"]["macro_f1"]
    assert diff["mean"] == pytest.approx(0.2) and diff["ci_low"] == pytest.approx(0.2)
    assert diff["verdict"] == "won"
    assert kcenter["vs_random"]["test_to_selected_mean"]["verdict"] == "won"  # lower is better
    assert kcenter["vs_random"]["test_to_selected_max"]["verdict"] == "tied"
    assert kcenter["rare_recall"] is None and kcenter["vs_random"]["rare_recall"] is None
    assert kcenter["recall_per_label"] == {"x": pytest.approx(0.8)}


def test_budgets_keep_what_was_given() -> None:
    budgets = parse_budgets("0.05, 0.1,500")
    assert [b.as_given() for b in budgets] == [0.05, 0.1, 500]
    assert [b.cells(1000) for b in budgets] == [50, 100, 500]
    assert parse_budgets([0.001])[0].cells(100) == 1


def test_row_subset_reads_only_its_rows(tmp_path: Path) -> None:
    path = mixed_donors(tmp_path / "mixed.h5ad")
    data = ad.read_h5ad(path)
    rows = np.flatnonzero((data.obs["donor"] != "D3").to_numpy())
    subset = RowSubset(H5adSource(path, "mixed"), rows)
    assert subset.n_obs == len(rows)
    assert list(subset.obs_names) == list(data.obs_names[rows])
    assert subset.read_obs().index.equals(data.obs.index[rows])
    chunks = list(subset.iter_x(chunk_rows=256))
    assert [start for start, _ in chunks] == sorted(start for start, _ in chunks)
    whole = sp.vstack([c for _, c in chunks]).toarray()
    np.testing.assert_array_equal(whole, data.X[rows].toarray())
    some = np.array([0, 5, 6, 700, len(rows) - 1])
    np.testing.assert_array_equal(subset.read_rows(some).toarray(), data.X[rows[some]].toarray())
    assert subset.x_is_counts()
    with pytest.raises(ValueError, match="sorted distinct"):
        RowSubset(H5adSource(path, "mixed"), rows[::-1])


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--holdout", "dataset_id"], ["--holdout dataset_id", "COLUMN=VALUE"]),
        (["--holdout", "dataset_id=nowhere"], ["no cell has that value", "pool, test"]),
        (["--holdout", "tissue_x=1"], ["--holdout tissue_x", "no such column"]),
        (["--holdout", "cell_type=grp_a"], ["none of the 460 test cells", "a pool cell has"]),
        (["--label", "nonsense"], ["--label nonsense", "no such column"]),
        (["--budgets", "0.05,abc"], ["--budgets abc"]),
        (["--budgets", "1.5"], ["--budgets 1.5", "fraction"]),
        (["--budgets", "0"], ["--budgets 0"]),
        (["--budgets", "5000"], ["--budgets 5000", "1206 cells in the pool"]),
        (["--budgets", "10,10"], ["named twice"]),
        (["--policies", "kcenter,nosuch"], ["--policies", "nosuch"]),
        (["--seeds", "0"], ["--seeds 0", "at least 1"]),
        (["--param", "nosuch:k=1"], ["--param nosuch:k=1", "not among --policies"]),
        (["--param", "novalue"], ["--param novalue", "key=value"]),
        (["--param", "bogus=1"], ["--param bogus=1", "no policy given it reads it"]),
        (["--strata", "nosuch"], ["--strata nosuch", "no such column"]),
        (["--quota", "equal"], ["--quota equal", "needs --strata"]),
        (["--strata", "cell_type", "--quota", "min:x"], ["--quota min:x", "proportional"]),
        (["--holdout", "nosuch=*"], ["--holdout nosuch", "no such column"]),
        (["--label", " "], ["--label", "non-empty"]),
    ],
)
def test_bad_input_is_one_line(
    rare_pool: list[Path], tmp_path: Path, extra: list[str], needles: list[str]
) -> None:
    args = {"--holdout": "dataset_id=test", "--label": "cell_type", "--budgets": "24"}
    for key, value in zip(extra[::2], extra[1::2], strict=True):
        args[key] = value
    flat = [item for pair in args.items() for item in pair]
    out = tmp_path / "bench"
    code, _, err = run("bench", *rare_pool, *flat, "--seeds", args.get("--seeds", "1"), "-o", out)
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("scurate: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    assert not (out / "bench.json").exists()


def test_every_cell_held_out_and_no_label_in_the_pool(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    programs = type_programs(rng, 2)
    data = make_adata(rng, programs, TYPES[:2], [50, 50], prefix="c_")
    data.obs["site"] = "S1"
    data.obs["note"] = pd.Categorical([np.nan] * 60 + ["x"] * 40)
    data.obs["group"] = ["g1"] * 60 + ["g2"] * 40
    path = tmp_path / "one.h5ad"
    data.write_h5ad(path)
    base = ["bench", path, "--budgets", "10", "--seeds", "1", "-o", tmp_path / "b"]
    code, _, err = run(*base, "--holdout", "site=S1", "--label", "cell_type")
    assert code == 1 and "every cell has that value" in err and err.count("\n") == 1
    code, _, err = run(*base, "--holdout", "group=g2", "--label", "note")
    assert code == 1 and "--label note: no pool cell has a label" in err
    code, _, err = run(*base, "--holdout", "group=g1", "--label", "note")
    assert code == 1 and "none of the 60 test cells" in err
    code, _, err = run(*base, "--holdout", "site=*", "--label", "cell_type")
    assert code == 1 and err.count("\n") == 1, err
    assert "--holdout 'site=*': the column has one value, 'S1', so no value can be held out" in err
    code, _, err = run(*base, "--holdout", "group=*", "--label", "note")  # g1: nothing scored
    assert code == 1 and "every value was skipped" in err and err.count("\n") == 1


def test_autoencoder_representation_where_torch_is_installed(rare_pool: list[Path]) -> None:
    pytest.importorskip("torch", reason="torch not installed: pip install torch")
    options = {"holdout": "dataset_id=test", "label": "cell_type", "budgets": "40", "seeds": 2}
    result = bench(rare_pool, policies="kcenter", representations="pca,autoencoder", **options)
    assert result.info["parameters"]["representations"] == ["pca", "autoencoder"]
    assert result.info["metrics"][-1] == "knn_transfer_f1_autoencoder"
    values = [r["knn_transfer_f1_autoencoder"] for r in result.records]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert "knn_transfer_f1_autoencoder" in by_policy(result.summary, "kcenter")["vs_random"]
    from scurate._bench.autoencoder import LATENT, fit_encode

    x = sp.random(60, 30, density=0.3, format="csr", dtype=np.float32, random_state=0)
    code = fit_encode(x[:20], x, seed=0)
    assert code.shape == (60, LATENT)
    np.testing.assert_array_equal(code, fit_encode(x[:20], x, seed=0))  # seeded


def test_autoencoder_without_torch_is_one_line(
    rare_pool: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails as if absent
    code, _, err = run(
        "bench",
        *rare_pool,
        "--holdout",
        "dataset_id=test",
        "--label",
        "cell_type",
        "--representations",
        "pca,autoencoder",
        "-o",
        tmp_path / "b",
    )
    assert code == 1 and err.count("\n") == 1, err
    assert "--representations autoencoder: needs torch" in err
    code, _, err = run(
        "bench",
        *rare_pool,
        "--holdout",
        "dataset_id=test",
        "--label",
        "cell_type",
        "--representations",
        "umap",
        "-o",
        tmp_path / "b",
    )
    assert code == 1 and "--representations umap: not a representation" in err
    code, _, err = run(
        "bench",
        *rare_pool,
        "--holdout",
        "dataset_id=test",
        "--representations",
        "pca,autoencoder",
        "-o",
        tmp_path / "b",
    )
    assert code == 1 and err.count("\n") == 1, err
    assert "--representations autoencoder: needs --label" in err


def with_columns(path: Path, seed: int = 11) -> Path:
    """``mixed_donors`` plus obs-only columns: ``batch`` (b1 for 80 % of the cells, b2 for the
    rest), ``kind`` (a copy of cell_type) and ``site`` (one value)."""
    mixed_donors(path)
    data = ad.read_h5ad(path)
    rng = np.random.default_rng(seed)
    data.obs["batch"] = np.where(rng.random(data.n_obs) < 0.8, "b1", "b2")
    data.obs["kind"] = data.obs["cell_type"].astype(str).to_numpy()
    data.obs["site"] = "S1"
    data.write_h5ad(path)
    return path


def test_knn_coverage_is_the_share_of_test_cells_whose_nearest_pick_is_a_near_neighbour() -> None:
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(300, 4)).astype(np.float32)
    test = rng.normal(0.3, 1.2, size=(80, 4)).astype(np.float32)
    d = np.linalg.norm(test[:, None, :] - pool[None, :, :], axis=2)
    nn = np.argsort(d, axis=1)[:, :COVERAGE_K]
    empty = sp.csr_matrix((0, 1), dtype=np.float32)
    feats = Features(empty, empty, pool, test, None, nn)  # type: ignore[arg-type]
    for size in (5, 30, 150):
        rows = np.sort(rng.choice(300, size=size, replace=False)).astype(np.int64)
        got = label_free(rows, feats)
        nearest = d[:, rows].min(axis=1)
        kth = np.sort(d, axis=1)[:, COVERAGE_K - 1]
        assert got["knn_coverage"] == pytest.approx(np.mean(nearest <= kth))
        assert got["test_to_selected_mean"] == pytest.approx(nearest.mean(), rel=1e-5)
        assert got["test_to_selected_max"] == pytest.approx(nearest.max(), rel=1e-5)
    assert label_free(np.arange(300, dtype=np.int64), feats)["knn_coverage"] == 1.0


def test_without_a_label_only_the_label_free_metrics(tmp_path: Path) -> None:
    path = mixed_donors(tmp_path / "mixed.h5ad")
    # qc off: the expected coverage of random picks assumes every pool cell can be picked
    result = bench(
        [path], holdout="donor=D3", budgets="0.02,0.3", policies="kcenter", seeds=3, qc="off"
    )
    assert result.info["metrics"] == list(LABEL_FREE)
    assert result.info["split"]["label"] is None
    for record in result.records:
        assert "macro_f1" not in record and 0.0 <= record["knn_coverage"] <= 1.0
        assert record["recall_per_label"] == {} and record["labels_covered"] is None
    assert result.full_pool["knn_coverage"] == 1.0
    random = [r for r in result.summary if r["policy"] == "random"]
    low, high = (r["knn_coverage"]["mean"] for r in random)  # 2 % then 30 % of the pool
    assert low < 0.3 < 0.7 < high  # about 1 - (1 - f) ** 5: 0.10 and 0.83
    kcenter = by_policy([r for r in result.summary if r["budget"] == 0.3], "kcenter")
    assert set(kcenter["vs_random"]) == set(LABEL_FREE)
    # with a label, the label-free metrics are measured too, the same values for the same picks
    labelled = bench(
        [path],
        holdout="donor=D3",
        label="cell_type",
        budgets="0.02,0.3",
        policies="kcenter",
        seeds=3,
        qc="off",
    )
    assert [r["knn_coverage"] for r in labelled.records] == [
        r["knn_coverage"] for r in result.records
    ]


def test_cli_without_label(tmp_path: Path) -> None:
    path = mixed_donors(tmp_path / "mixed.h5ad")
    out = tmp_path / "b"
    code, stdout, err = run(
        "bench", path, "--holdout", "donor=D3", "--budgets", "40", "--seeds", "2", "-o", out
    )
    assert code == 0, err
    assert "knn_coverage" in stdout and "macro_f1" not in stdout
    payload = json.loads((out / "bench.json").read_text())
    assert payload["metrics"] == list(LABEL_FREE)
    html = (out / "bench.html").read_text()
    assert html.count("<svg") == 3 and "No label" in html and "Recall per label" not in html


def test_strata_quota_and_obs_columns_reach_every_policy(tmp_path: Path) -> None:
    path = with_columns(tmp_path / "mixed.h5ad")
    data = ad.read_h5ad(path)
    batch_of = dict(zip(data.obs_names, data.obs["batch"], strict=True))
    result = bench(
        [path],
        holdout="donor=D3",
        label="kind",  # an obs column no harmonizer knows
        budgets="40",
        policies="kcenter,reweight",
        params=["reweight:label=batch"],  # reweight balances an obs column too
        seeds=2,
    )
    picks = result.selections.with_columns(
        pl.col("cell_id").str.split("/").list.last().replace_strict(batch_of).alias("batch")
    )
    counts = picks.filter(pl.col("policy") == "reweight").group_by("seed", "batch").len()
    assert sorted(counts["len"].to_list()) == [20, 20, 20, 20]  # equal per batch
    # the label read from obs is the cell types: the same scores as with cell_type
    again = bench(
        [path], holdout="donor=D3", label="cell_type", budgets="40", policies="kcenter", seeds=2
    )
    assert [r["macro_f1"] for r in again.records] == [
        r["macro_f1"] for r in result.records if r["policy"] != "reweight"
    ]
    stratified = bench(
        [path],
        holdout="donor=D3",
        label="kind",
        budgets="40",
        policies="kcenter",
        strata="batch",
        quota="equal",
        seeds=2,
    )
    assert stratified.info["parameters"]["strata"] == ["batch"]
    assert stratified.info["parameters"]["quota"] == "equal"
    picks = stratified.selections.with_columns(
        pl.col("cell_id").str.split("/").list.last().replace_strict(batch_of).alias("batch")
    )
    for (policy,), frame in picks.group_by("policy"):
        per = frame.group_by("seed", "batch").len()["len"].to_list()
        assert sorted(per) == [20, 20, 20, 20], policy  # random too: quotas are select's


def test_every_value_held_out_in_turn(tmp_path: Path) -> None:
    path = tmp_path / "mixed.h5ad"
    mixed_donors(path)
    data = ad.read_h5ad(path)
    rng = np.random.default_rng(2)
    tiny = make_adata(rng, type_programs(rng, 3), TYPES[:3], [2, 2, 2], prefix="D4_")
    tiny.obs["donor"] = "D4"  # 6 cells: too few to hold out
    tiny.var_names = data.var_names
    ad.concat([data, tiny]).write_h5ad(path)
    out = tmp_path / "b"
    code, stdout, err = run(
        "bench",
        path,
        "--holdout",
        "donor=*",
        "--label",
        "cell_type",
        "--budgets",
        "0.05",
        "--policies",
        "kcenter",
        "--seeds",
        "2",
        "-o",
        out,
    )
    assert code == 0, err
    assert "skipped holdout donor=D4: 6 cells, fewer than 10" in stdout
    assert "won/tied/lost" in stdout
    payload = json.loads((out / "bench.json").read_text())
    assert [h["holdout"]["value"] for h in payload["holdouts"]] == ["D1", "D2", "D3"]
    assert payload["skipped_holdouts"] == [
        {"value": "D4", "n_cells": 6, "reason": "6 cells, fewer than 10"}
    ]
    for part in payload["holdouts"]:
        value = part["holdout"]["value"]
        assert part["split"]["n_test"] == (300 if value == "D3" else 900)
        assert len(part["records"]) == 2 * 2 and {r["holdout"] for r in part["records"]} == {value}
    across = payload["across_holdouts"]
    (row,) = across["by_budget"]
    (overall,) = across["overall"]
    assert row["policy"] == overall["policy"] == "kcenter" and row["n"] == overall["n"] == 3
    for metric in payload["metrics"]:
        verdicts = [
            s["vs_random"][metric]["verdict"] if s["vs_random"][metric] else None
            for part in payload["holdouts"]
            for s in part["summary"]
            if s["policy"] == "kcenter"
        ]
        counted = {v: verdicts.count(v) for v in ("won", "tied", "lost")}
        assert {v: row[metric][v] for v in counted} == counted, metric
    picks = pl.read_parquet(out / "selections.parquet")
    assert sorted(picks["holdout"].unique().to_list()) == ["D1", "D2", "D3"]
    html = (out / "bench.html").read_text()
    assert html.count("<h1>Held out:") == 3 and "across holdouts" in html and "D4" in html


def test_tally_counts_verdicts_per_budget_and_overall() -> None:
    def row(budget: float, verdict: str | None, mean: float) -> dict:
        diff = {"mean": mean, "ci_low": None, "ci_high": None, "verdict": verdict}
        return {"policy": "p", "budget": budget, "vs_random": {"macro_f1": diff}}

    summaries = [
        [{"policy": "random", "budget": 0.1}, row(0.1, "won", 0.2), row(0.5, "tied", 0.0)],
        [row(0.1, "lost", -0.1), row(0.5, "tied", 0.1)],
        [row(0.1, "won", 0.2), row(0.5, None, 0.3)],
    ]
    out = tally(summaries, ["macro_f1"])
    small, large = out["by_budget"]
    assert small["budget"] == 0.1 and small["n"] == 3
    assert {k: small["macro_f1"][k] for k in ("won", "tied", "lost")} == {
        "won": 2,
        "tied": 0,
        "lost": 1,
    }
    assert small["macro_f1"]["mean_diff"] == pytest.approx(0.1)
    assert large["macro_f1"]["tied"] == 2 and large["macro_f1"]["no_verdict"] == 1
    (overall,) = out["overall"]
    assert overall["n"] == 6
    assert [overall["macro_f1"][k] for k in ("won", "tied", "lost", "no_verdict")] == [2, 2, 1, 1]


THREADS_SCRIPT = """
import json, sys
from threadpoolctl import threadpool_info
import scurate._bench.run as run

seen = []
def watch(function):
    def wrapped(*args, **kwargs):
        out = function(*args, **kwargs)  # the libraries it loads are loaded by now
        seen.extend((i["user_api"], i["filepath"], i["num_threads"]) for i in threadpool_info())
        return out
    return wrapped

run.features, run.evaluate = watch(run.features), watch(run.evaluate)
run.bench([sys.argv[1]], holdout="donor=D3", label="cell_type", budgets="30", seeds=1,
          threads=1)
print(json.dumps(seen))
"""


def test_no_blas_or_openmp_library_escapes_the_thread_limits(tmp_path: Path) -> None:
    """In a fresh interpreter (libraries load lazily there, as in a real run) whose BLAS and
    OpenMP would otherwise take 3 threads: every library runs on one while bench evaluates."""
    import os
    import subprocess
    import sys

    path = mixed_donors(tmp_path / "mixed.h5ad")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "3", "OMP_NUM_THREADS": "3"}
    done = subprocess.run(
        [sys.executable, "-c", THREADS_SCRIPT, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert {api for api, _, _ in seen} >= {"blas", "openmp"}
    assert [(lib, n) for _, lib, n in seen if n != 1] == []

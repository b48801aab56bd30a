"""QC: per-cell values in every mode, mitochondrial genes found however a file names them, the
filters and their options, the reason column, the work dir, and the planted-junk corpus."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse as sp
import scurate
from scurate._compute.doublets import (
    MIN_NEIGHBOURS,
    SIM_NEIGHBOURS,
    _count_inside,
    _count_within,
    auto_threshold,
    own_radius,
)
from scurate._compute.faiss_index import build_index
from scurate._compute.qc import (
    QcSpec,
    QcValues,
    defaults_for,
    failures,
    gene_floor,
    mito_columns,
    parse_qc,
)
from scurate._data.example import example_sources
from scurate._data.sources import GeneTable
from scurate.errors import OptionError

from conftest import make_adata, type_programs
from qc_corpus import N_MITO, RARE, planted_corpus, symbols, write_planted
from test_cli_select import fails_in_one_line, run

MT_IDS = ["ENSG00000198712", "ENSG00000198727", "ENSG00000198695"]  # MT-CO2, MT-CYB, MT-ND6


def table(names: list[str], **columns: list[str]) -> GeneTable:
    return GeneTable(
        np.asarray(names, dtype=object),
        {k: np.asarray(v, dtype=object) for k, v in columns.items()},
    )


def test_mito_genes_by_symbol_id_or_flag() -> None:
    mask, where = mito_columns(table(["CD3E", "MT-CO1", "mt-Nd1", "MTOR"]))
    assert mask.tolist() == [False, True, True, False] and where == "symbols in var_names"
    ids = ["ENSG00000010610", *MT_IDS]
    mask, where = mito_columns(table(ids, feature_name=["CD4", "MT-CO2", "MT-CYB", "MT-ND6"]))
    assert mask.tolist() == [False, True, True, True] and where == "symbols in var['feature_name']"
    mask, where = mito_columns(table(ids))  # ids only: mapped through the gene table
    assert mask.tolist() == [False, True, True, True]
    assert where == "ids in var_names through the gene table"
    mask, where = mito_columns(table(["a", "b", "c"], mito=["False", "True", "False"]))
    assert mask.tolist() == [False, True, False] and where == "var['mito']"
    mask, where = mito_columns(table(["a", "b"]))
    assert not mask.any() and where is None


def write_small(path: Path, *, var: pd.DataFrame, seed: int = 0, n: int = 300) -> ad.AnnData:
    """Raw counts of two types over ``var``'s genes, the last three mitochondrial-rich."""
    rng = np.random.default_rng(seed)
    m = len(var)
    programs = rng.gamma(0.8, 1.0, size=(2, m))
    programs[0, :20] *= 10
    programs[1, 20:40] *= 10
    types = np.arange(n) % 2
    x = rng.poisson(programs[types] / programs[types].sum(1, keepdims=True) * 2500.0)
    obs = pd.DataFrame({"cell_type": np.where(types, "B", "T")}, index=[f"c{i}" for i in range(n)])
    obs["cell_type"] = obs["cell_type"].astype("category")
    adata = ad.AnnData(sp.csr_matrix(x.astype(np.float32)), obs=obs, var=var)
    rng2 = np.random.default_rng(seed + 1)
    adata.obsm["X_emb"] = rng2.normal(size=(n, 8)).astype(np.float32) + types[:, None] * 5
    adata.write_h5ad(path)
    return adata


def expected_mito(adata: ad.AnnData, columns: slice) -> np.ndarray:
    x = adata.X.toarray().astype(np.float64)
    return (x[:, columns].sum(1) / x.sum(1)).astype(np.float32)


def test_obsm_mode_fills_qc_and_a_var_flag_marks_mito(tmp_path: Path) -> None:
    var = pd.DataFrame(index=[f"g{i}" for i in range(200)])
    var["mt"] = np.arange(200) >= 197  # a boolean flag, no MT- symbol anywhere
    adata = write_small(tmp_path / "flag.h5ad", var=var)
    result = scurate.select([tmp_path / "flag.h5ad"], 20, obsm_key="X_emb")
    m = result.manifest
    x = adata.X.toarray()
    np.testing.assert_allclose(m["n_counts"].to_numpy(), x.sum(1), rtol=1e-6)
    assert m["n_genes"].to_list() == (x > 0).sum(1).tolist()
    np.testing.assert_allclose(m["mito_fraction"].to_numpy(), expected_mito(adata, slice(197, 200)))
    assert m["doublet_score"].null_count() == m.height  # no model to simulate doublets with
    values = result.report["qc_values"]
    assert values["mito_genes_from"] == {"flag": "var['mt']"}
    assert "obsm" in values["doublets"]["not_scored"]
    # in memory too: the same flag is read from the AnnData's var
    again = scurate.select({"flag": adata}, 20, obsm_key="X_emb")
    np.testing.assert_allclose(again.manifest["mito_fraction"].to_numpy(), m["mito_fraction"])


def test_a_source_without_counts_gets_null_qc(tmp_path: Path) -> None:
    var = pd.DataFrame(index=[*[f"g{i}" for i in range(197)], "MT-A", "MT-B", "MT-C"])
    adata = write_small(tmp_path / "counts.h5ad", var=var)
    norm = adata.copy()
    norm.X = sp.csr_matrix(np.log1p(norm.X.toarray() / norm.X.sum(1).A * 1e4), dtype=np.float32)
    norm.obs_names = [f"n{i}" for i in range(norm.n_obs)]
    norm.write_h5ad(tmp_path / "normalized.h5ad")
    result = scurate.select([tmp_path / "counts.h5ad", tmp_path / "normalized.h5ad"], 30)
    m = result.manifest
    counts, normed = (
        m.filter(pl.col("dataset_id") == "counts"),
        m.filter(pl.col("dataset_id") == "normalized"),
    )
    assert counts["n_counts"].null_count() == 0 and counts["doublet_score"].null_count() == 0
    for column in ("n_counts", "n_genes", "mito_fraction", "doublet_score"):
        assert normed[column].null_count() == normed.height, column
    np.testing.assert_allclose(
        counts["mito_fraction"].to_numpy(), expected_mito(adata, slice(197, 200)), rtol=1e-5
    )
    assert "normalized" in result.report["qc_values"]["no_counts"]


def test_parse_qc_and_its_errors() -> None:
    assert parse_qc(None) == QcSpec() and parse_qc("off") == QcSpec(enabled=False)
    spec = parse_qc("min_genes=300, max_mito=0.1,doublets=off")
    assert (spec.min_genes, spec.max_mito, spec.doublets) == (300, 0.1, "off")
    assert not spec.scores_doublets and spec.as_given() == "min_genes=300,max_mito=0.1,doublets=off"
    assert parse_qc({"doublets": 0.4, "min_genes": "auto"}) == QcSpec(doublets=0.4)
    for given, needle in [
        ("min_gene=200", "unknown key 'min_gene'"),
        ("min_genes=2.5", "expected a whole number >= 0 for min_genes"),
        ("max_mito=1.5", "expected a number in [0, 1] for max_mito"),
        ("doublets=maybe", "for doublets"),
        ("min_genes", "expected key=value"),
    ]:
        with pytest.raises(OptionError, match="^qc=") as err:
            parse_qc(given)
        assert needle in str(err.value), str(err.value)


def test_bad_qc_on_the_command_line_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "a.h5ad"
    write_small(path, var=pd.DataFrame(index=[f"g{i}" for i in range(100)]))
    out = tmp_path / "out"
    fails_in_one_line(
        ["select", path, "-b", "5", "-o", out, "--qc", "max_mito=2"],
        "--qc max_mito=2: expected a number in [0, 1] for max_mito",
    )
    fails_in_one_line(["score", path, "-o", out, "--qc", "nope=1"], "--qc nope=1: unknown key")
    assert not out.exists()


def test_filters_per_assay_and_floor() -> None:
    assert defaults_for("10x 3' v3", "cell") == (200, 0.2)
    assert defaults_for("10x 3' v3", "nucleus") == (200, 0.05)
    assert defaults_for("Smart-seq2", None) == (500, 0.2)
    n = 100
    genes = np.r_[np.full(98, 1000), 150, 50].astype(np.int64)
    qc = QcValues(
        np.full(n, 3000.0, np.float32),
        genes,
        np.r_[np.full(99, 0.03), 0.1].astype(np.float32),
        np.r_[0.9, np.zeros(99)].astype(np.float32),
        {"doublets": {"threshold": 0.5}},
    )
    ids = ["d"] * n
    cells = failures(qc, QcSpec(), ids, ["10x"] * n, ["cell"] * n)
    assert np.flatnonzero(cells["min_genes"]).tolist() == [98, 99]
    assert not cells["max_mito"].any() and np.flatnonzero(cells["doublets"]).tolist() == [0]
    nuclei = failures(qc, QcSpec(), ids, ["10x"] * n, ["nucleus"] * n)
    assert np.flatnonzero(nuclei["max_mito"]).tolist() == [99]
    assert failures(qc, QcSpec(enabled=False), ids, ["10x"] * n, ["cell"] * n) == {}
    # a shallow dataset (its cells detect ~80 genes) is not filtered whole
    few = np.r_[np.full(99, 80), 5].astype(np.int64)
    shallow = QcValues(qc.n_counts, few, qc.mito_fraction, qc.doublet_score, qc.info)
    lowered = failures(shallow, QcSpec(), ids, ["10x"] * n, ["cell"] * n)["min_genes"]
    assert np.flatnonzero(lowered).tolist() == [99]


def test_filters_read_manifest_columns_as_polars_or_lists() -> None:
    # three datasets, assays with gaps: a polars column (as the manifest holds it) and a list
    # give the same filters, and each dataset's gene floor is its own
    rng = np.random.default_rng(1)
    n = 300
    genes = rng.integers(100, 3000, n)
    genes[200:] = np.r_[rng.integers(60, 120, 98), 3, 5]  # a shallow third dataset
    qc = QcValues(
        rng.uniform(500, 9000, n).astype(np.float32),
        genes,
        rng.uniform(0, 0.3, n).astype(np.float32),
        rng.uniform(0, 1, n).astype(np.float32),
        {"doublets": {"threshold": 0.8}},
    )
    ids = ["a"] * 100 + ["b"] * 100 + ["c"] * 100
    assay = ["10x 3' v3"] * 50 + [None] * 50 + ["Smart-seq2"] * 100 + ["10x 3' v3"] * 100
    suspension = ["nucleus"] * 100 + [None] * 100 + ["cell"] * 100
    lists = failures(qc, QcSpec(), ids, assay, suspension)
    frame = pl.DataFrame({"d": ids, "a": assay, "s": suspension})
    series = failures(qc, QcSpec(), frame["d"], frame["a"], frame["s"])
    assert lists.keys() == series.keys() == {"min_genes", "max_mito", "doublets"}
    for name in lists:
        assert np.array_equal(lists[name], series[name]), name
    # the nuclei's mito limit, Smart-seq2's gene floor, the shallow dataset not filtered whole
    assert np.array_equal(lists["max_mito"][:100], qc.mito_fraction[:100] > 0.05)
    floor = min(500, gene_floor(genes[100:200]))
    assert np.array_equal(lists["min_genes"][100:200], genes[100:200] < floor)
    assert np.flatnonzero(lists["min_genes"][200:]).tolist() == [98, 99]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray], Path]:
    folder = tmp_path_factory.mktemp("planted")
    path, kinds = write_planted(folder, seed=0)
    return path, kinds, folder / "work"


@pytest.mark.parametrize("policy", [None, "kcenter", "facility"])
def test_planted_junk_is_not_selected(
    planted: tuple[Path, dict[str, np.ndarray], Path], policy: str | None
) -> None:
    path, kinds, work = planted
    n = len(planted_corpus(0)[0])
    budget = round(0.1 * n)
    given = {} if policy is None else {"policy": policy}
    result = scurate.select([path], budget, work_dir=work, **given)
    selected = result.manifest["selected"].to_numpy()
    assert selected[kinds["low_depth"]].sum() == 0
    assert selected[kinds["doublet"]].sum() <= 0.05 * len(kinds["doublet"])
    for rare in RARE:
        assert selected[kinds[rare]].any(), rare
    reason = result.manifest["reason"].to_numpy()
    assert set(reason[kinds["low_depth"]]) == {"qc"}
    assert (reason == "selected").sum() == budget
    qc = result.report["qc"]
    assert qc["failed_per_filter"]["min_genes"] >= len(kinds["low_depth"])
    assert result.report["reasons"]["qc"] == qc["set_aside"]


def called_doublets(result: scurate.Scores) -> np.ndarray:
    threshold = result.report["qc_values"]["doublets"]["threshold"]
    return np.nan_to_num(result.manifest["doublet_score"].to_numpy()) > threshold


def test_doublet_calls_on_the_planted_corpus(
    planted: tuple[Path, dict[str, np.ndarray], Path],
) -> None:
    """All planted doublets but a few, few singlets, and no cell of a rare type. Measured: 80 of
    80 caught, 12 of 2,914 singlets, no rare cell (Scrublet 0.2.3: 80, 17, of them all 14 rare
    cells). The share of simulations among the 10 nearest called 67 singlets (78 caught) and 5
    of the 6 ILC cells: past its own few cells a rare cell's 10 nearest reach the simulations
    halfway to the next type."""
    path, kinds, work = planted
    called = called_doublets(scurate.score([path], work_dir=work))
    doublet = np.zeros(len(called), dtype=bool)
    doublet[kinds["doublet"]] = True
    assert called[doublet].sum() >= 76
    assert called[~doublet].sum() <= 20
    assert not called[kinds["low_depth"]].any()
    for rare in RARE:
        assert not called[kinds[rare]].any(), rare


def test_no_cell_of_a_rare_type_is_called_a_doublet(tmp_path: Path) -> None:
    """tests/test_bench.py's rare pool (6 cells of a type R among 1,200) and lab_a's 8 pDCs:
    no rare cell is called a doublet."""
    rng = np.random.default_rng(7)
    types = ("grp_a", "grp_b", "grp_c", "grp_r")
    pool = make_adata(rng, type_programs(rng, 4), types, [400, 400, 400, 6], prefix="p_")
    pool.write_h5ad(tmp_path / "pool.h5ad")
    called = called_doublets(scurate.score([tmp_path / "pool.h5ad"], work_dir=tmp_path / "w"))
    assert not called[pool.obs["cell_type"].to_numpy() == "grp_r"].any()


def test_a_rare_cells_radius_stops_at_its_own_cluster() -> None:
    """A cell of a rare type (4 others close, the rest far) counts simulations only inside its
    4th nearest; a cell inside a common type keeps all 10; a cell with 2 close others still
    reaches the MIN_NEIGHBOURS-th."""
    rare = np.r_[np.full(4, 1.0), np.full(6, 3.0)] ** 2
    common = np.linspace(1.0, 1.2, 10) ** 2
    pair = np.r_[np.full(2, 1.0), np.full(8, 3.0)] ** 2
    short = np.r_[1.0, 1.1, np.full(8, np.inf)]  # a pool of 3 cells lists 2 others
    radius, real = own_radius(np.array([rare, common, pair, short], dtype=np.float32))
    assert real.tolist() == [4, 10, MIN_NEIGHBOURS, 2]
    assert radius.tolist() == pytest.approx([1.0, 1.44, 9.0, 1.1])


def test_narrow_then_wide_search_counts_as_one_wide_search() -> None:
    """The simulations are searched 10 wide, and SIM_NEIGHBOURS wide only where all 10 lie
    inside the radius: the counts are those of one wide search, however large the radius."""
    rng = np.random.default_rng(3)
    sim = rng.normal(size=(2000, 8)).astype(np.float32)
    q = rng.normal(size=(300, 8)).astype(np.float32)
    index, _ = build_index(sim)
    radius = rng.uniform(0.5, 12.0, size=300).astype(np.float32)  # from none inside to capped
    d2, labels = index.search(q, SIM_NEIGHBOURS)
    wide = _count_inside(q, sim, d2, labels.astype(np.int64), radius)
    assert 0 < (wide < 10).sum() < 300 and (wide == SIM_NEIGHBOURS).any()
    assert _count_within(q, sim, index, radius, SIM_NEIGHBOURS).tolist() == wide.tolist()


def test_auto_threshold_is_above_the_bulk_of_the_cells_scores() -> None:
    sims = np.r_[np.full(20, 0.1), np.full(80, 0.9)].astype(np.float32)
    few = np.r_[np.zeros(90), np.full(10, 0.9)].astype(np.float32)  # cells mostly score 0
    threshold, set_by = auto_threshold(few, sims)
    assert threshold == pytest.approx(0.1) and set_by.startswith("Otsu")
    spread = np.linspace(0.0, 1.0, 101).astype(np.float32)  # simulations overlap the cells
    threshold, set_by = auto_threshold(spread, sims)
    assert threshold > 0.9 and set_by.startswith("median + 3 MADs")


def test_auto_calls_few_cells_where_no_doublet_is_planted(tmp_path: Path) -> None:
    """The example corpus plants no doublet; Otsu's split alone called 10 % of it (Scrublet
    0.2 %), the cells' own outlier bound keeps auto under 1 %."""
    result = scurate.score(example_sources(), work_dir=tmp_path / "work")
    doublets = result.report["qc_values"]["doublets"]
    called = result.manifest["doublet_score"].to_numpy() > doublets["threshold"]
    assert called.mean() < 0.01, doublets


def test_work_dir_keeps_qc_values(planted: tuple[Path, dict[str, np.ndarray], Path]) -> None:
    path, _, work = planted
    first = scurate.select([path], 50, work_dir=work)
    again = scurate.select([path], 80, work_dir=work)
    assert again.report["work_dir"]["reused"]
    for column in ("n_counts", "n_genes", "mito_fraction", "doublet_score"):
        assert first.manifest[column].equals(again.manifest[column]), column
    m = again.manifest
    assert 0.03 < m["mito_fraction"].median() < 0.05 and m["doublet_score"].null_count() == 0
    assert again.report["qc_values"]["mito_genes_from"] == {"planted": "symbols in var_names"}
    # doublets=off needs no doublet score: another pool, and nothing flagged as a doublet
    off = scurate.select([path], 80, work_dir=work, qc="doublets=off")
    assert not off.report["work_dir"]["reused"]
    assert off.manifest["doublet_score"].null_count() == off.manifest.height
    assert "doublets" not in off.report["qc"]["failed_per_filter"]


def test_select_prints_reasons_and_report_counts_per_dataset(
    planted: tuple[Path, dict[str, np.ndarray], Path], tmp_path: Path
) -> None:
    path, _, work = planted
    out = tmp_path / "out"
    code, stdout, err = run("select", path, "-b", "100", "-o", out, "--work-dir", work)
    assert code == 0, err
    assert "cells by reason: past_budget" in stdout and "qc " in stdout and "min_genes" in stdout
    report = json.loads((out / "report.json").read_text())
    row = report["datasets"][0]
    assert row["qc_set_aside"] == report["qc"]["per_dataset"]["planted"]["set_aside"] > 100
    manifest = pl.read_parquet(out / "manifest.parquet")
    assert set(manifest["reason"].unique()) <= {"selected", "qc", "past_budget", "near_copy"}
    assert manifest.filter(pl.col("reason") == "qc")["selected"].sum() == 0
    assert int(np.char.startswith(symbols().astype(str), "MT-").sum()) == N_MITO

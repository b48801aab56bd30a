"""Quotas over strata: allocation, prefix interleaving, the obs fallback, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scurate
from scurate._engine.options import Quota, parse_columns, parse_quota
from scurate._engine.strata import allocate, interleave
from scurate.cli import app
from scurate.errors import OptionError
from typer.testing import CliRunner

from conftest import TYPES, make_adata


def prefix_deviation(sequence: np.ndarray, quotas: np.ndarray) -> float:
    """Largest |count of stratum s in the first k - k * quota_s / B| over every k and s."""
    total = len(sequence)
    counts = np.zeros((total, len(quotas)))
    counts[np.arange(total), sequence] = 1
    counts = counts.cumsum(axis=0)
    ranks = np.arange(1, total + 1)[:, None]
    return float(np.abs(counts - ranks * quotas[None, :] / total).max())


@pytest.mark.parametrize("seed", range(6))
def test_every_prefix_holds_the_quotas_within_one_cell(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(60):
        quotas = rng.integers(0, rng.integers(1, 80), size=rng.integers(1, 14))
        if rng.random() < 0.4:  # one dominant stratum beside many small ones: the hard case
            quotas[0] = rng.integers(100, 500)
        if quotas.sum() == 0:
            continue
        sequence = interleave(quotas)
        assert np.array_equal(np.bincount(sequence, minlength=len(quotas)), quotas)
        assert prefix_deviation(sequence, quotas) < 1


def test_equal_quota_water_fills() -> None:
    sizes = np.array([5, 100, 3, 1000, 0, 50])
    # 60 over 5 non-empty strata: 12 each; 5 and 3 fit whole, 52 left over 3: 18, 17, 17
    assert allocate(sizes, 60, Quota("equal")).tolist() == [5, 17, 3, 18, 0, 17]
    assert allocate(sizes, 300, Quota("equal")).tolist() == [5, 100, 3, 142, 0, 50]
    assert allocate(sizes, 1158, Quota("equal")).tolist() == sizes.tolist()


def test_proportional_and_min_quotas() -> None:
    sizes = np.array([5, 100, 3, 1000, 0, 50])
    assert allocate(sizes, 300, Quota("proportional")).tolist() == [1, 26, 1, 259, 0, 13]
    got = allocate(sizes, 100, Quota("min", 10))
    assert got.sum() == 100 and (got >= np.minimum(sizes, 10)).all() and (got <= sizes).all()
    assert got.tolist() == [5, 10 + 5, 3, 10 + 55, 0, 10 + 2]  # 62 left, by 90:990:40
    with pytest.raises(OptionError, match=r"quota='min:10': the 6 strata need 38 cells"):
        allocate(sizes, 30, Quota("min", 10))
    for budget in (1, 7, 99, 500, 1158):
        for quota in (Quota("proportional"), Quota("equal")):
            got = allocate(sizes, budget, quota)
            assert got.sum() == budget and (got <= sizes).all()


def test_parse_quota_and_columns() -> None:
    assert parse_quota("min:3") == Quota("min", 3) and str(parse_quota("equal")) == "equal"
    for bad in ("min:0", "min:x", "min", "fair"):
        with pytest.raises(OptionError, match=rf"^quota='{bad}': expected proportional"):
            parse_quota(bad)
    assert parse_columns("tissue, cell_type") == ["tissue", "cell_type"]
    with pytest.raises(OptionError, match="a column is named twice"):
        parse_columns("tissue,tissue")


def test_strata_on_harmonized_cell_types_every_prefix_and_nulls(
    tmp_path: Path, programs: np.ndarray
) -> None:
    """--strata cell_type counts the harmonized column (CL labels where a term matched, the
    text where none did); a lab without the column forms the null stratum."""
    rng = np.random.default_rng(1)
    a = make_adata(rng, programs, TYPES, [300, 120, 60, 200, 6], prefix="a_")
    b = make_adata(rng, programs, TYPES, [100, 50, 0, 80, 0], prefix="b_")
    del b.obs["cell_type"]
    paths = [tmp_path / "a.h5ad", tmp_path / "b.h5ad"]
    a.write_h5ad(paths[0])
    b.write_h5ad(paths[1])
    budget = 90
    sel = scurate.select(paths, budget, strata="cell_type", quota="equal", seed=2, qc="off")
    strata = sel.report["strata"]
    assert strata["columns"] == ["cell_type"] and strata["quota"] == "equal"
    got = {s["values"]["cell_type"]: (s["pool"], s["selected"]) for s in strata["strata"]}
    # 6 strata (5 types + null), 15 each; pDC (6) whole, the 9 left go one each (larger first)
    harmonized = {
        "B": "B cell",
        "Mono": "Mono",  # no term matches: kept as text
        "NK": "natural killer cell",
        "T": "T cell",
        "pDC": "plasmacytoid dendritic cell",
    }
    assert got == {
        "B cell": (120, 17),
        "Mono": (200, 17),
        "natural killer cell": (60, 16),
        "T cell": (300, 17),
        "plasmacytoid dendritic cell": (6, 6),
        None: (230, 17),
    }
    # every prefix of the ranked selection holds the quotas within one cell
    ranked = sel.selected
    as_written = a.obs["cell_type"].astype(str).map(harmonized).to_numpy()
    truth = np.concatenate([as_written, np.full(230, "null")])
    names = sorted(k or "null" for k in got)
    quotas = np.array([got[None if n == "null" else n][1] for n in names])
    code = {n: i for i, n in enumerate(names)}
    offset = np.where(ranked["dataset_id"] == "b", a.n_obs, 0)
    rows = (ranked["row"].to_numpy() + offset).astype(int)
    assert prefix_deviation(np.array([code[truth[r]] for r in rows]), quotas) < 1
    # the manifest holds the same harmonized column
    assert sel.manifest["cell_type"].null_count() == 230
    again = scurate.select(paths, budget, strata="cell_type", quota="equal", seed=2, qc="off")
    assert again.selected["cell_id"].to_list() == ranked["cell_id"].to_list()


@pytest.mark.parametrize("policy", ["kcenter", "random"])
def test_strata_compose_with_policies(two_labs: list[Path], policy: str) -> None:
    sel = scurate.select(two_labs, 80, policy=policy, strata=["dataset_id"], seed=3)
    per = {s["values"]["dataset_id"]: s["selected"] for s in sel.report["strata"]["strata"]}
    assert per == {"lab_a": 45, "lab_b": 35}  # proportional to 898 and 700
    got = sel.selected.group_by("dataset_id").len().sort("dataset_id")["len"].to_list()
    assert got == [45, 35]
    assert sel.report["parameters"]["strata"] == ["dataset_id"]
    assert sel.report["covering_radius"] > 0


runner = CliRunner()


def fails_in_one_line(args: list[str], *needles: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.stderr
    err = result.stderr
    assert err.count("\n") == 1 and err.startswith("scurate: error: "), err
    for needle in needles:
        assert needle in err, err


def test_strata_errors_are_one_line(two_labs: list[Path], tmp_path: Path) -> None:
    base = ["select", *map(str, two_labs), "-b", "50", "-o", str(tmp_path / "out")]
    fails_in_one_line(
        [*base, "--strata", "batch"], "--strata batch: not a manifest column, nor an obs column"
    )
    fails_in_one_line(
        [*base, "--strata", "tissue"], "--strata tissue: the column is empty for every cell"
    )
    fails_in_one_line([*base, "--quota", "equal"], "--quota equal: needs --strata")
    fails_in_one_line([*base, "--strata", "dataset_id", "--quota", "most"], "--quota most")
    fails_in_one_line(
        [*base, "-b", "5", "--strata", "cell_type", "--quota", "min:2"],
        "--quota min:2: the 5 strata need 10 cells, more than the budget of 5",
    )
    assert not (tmp_path / "out" / "manifest.parquet").exists()


def test_cli_strata_writes_weights_and_report(two_labs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["select", *map(str, two_labs), "-b", "40", "-o", str(out), "--strata", "dataset_id"]
    result = runner.invoke(app, [*args, "--quota", "equal"])
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert [s["selected"] for s in report["strata"]["strata"]] == [20, 20]
    manifest = pl.read_parquet(out / "manifest.parquet")
    assert manifest["weight"].sum() == manifest.height == report["weights"]["sum"]


def test_two_columns_make_one_stratum_per_combination(two_labs: list[Path]) -> None:
    sel = scurate.select(two_labs, 100, strata="dataset_id,cell_type", quota="min:3", seed=1)
    strata = sel.report["strata"]["strata"]
    assert [tuple(s["values"].values()) for s in strata] == [
        ("lab_a", "B cell"),
        ("lab_a", "Mono"),
        ("lab_a", "T cell"),
        ("lab_a", "natural killer cell"),
        ("lab_a", "plasmacytoid dendritic cell"),
        ("lab_b", "B cell"),
        ("lab_b", "Mono"),
        ("lab_b", "T cell"),
        ("lab_b", "natural killer cell"),
    ]
    assert all(s["selected"] >= 3 for s in strata) and sum(s["selected"] for s in strata) == 100


def test_an_obs_column_divides_the_cells_left_after_qc_and_copies() -> None:
    """A stratum column only the sources' obs has (lab_c's `sample`) is read for exactly the
    cells the policy chooses from: with QC failures and lab_c's copies of lab_a set aside, each
    selected cell's stratum is its own row's value."""
    import anndata as ad
    from scurate._data.example import example_sources

    sources = example_sources()
    sel = scurate.select(sources, 120, strata="sample", quota="equal", seed=0)
    strata = {s["values"]["sample"]: s for s in sel.report["strata"]["strata"]}
    assert set(strata) == {"C1", "C2", None}
    assert sel.report["reasons"]["exact_copy"] > 0 and sel.report["reasons"]["qc"] > 0
    lab_c = next(p for p in sources if "lab_c" in str(p))
    sample = ad.read_h5ad(lab_c, backed="r").obs["sample"].astype(str).to_numpy()
    chosen = sel.selected.filter(pl.col("dataset_id") == "lab_c")
    got = sample[chosen["row"].to_numpy().astype(int)]
    for value in ("C1", "C2"):
        assert int((got == value).sum()) == strata[value]["selected"] == 40
    pool_c = sel.manifest.filter(
        (pl.col("dataset_id") == "lab_c")
        & pl.col("reason").is_in(["selected", "quota_full", "past_budget"])
    )
    in_pool = sample[pool_c["row"].to_numpy().astype(int)]
    assert [int((in_pool == v).sum()) for v in ("C1", "C2")] == [
        strata["C1"]["pool"],
        strata["C2"]["pool"],
    ]

"""scurate score, scurate index build and select's scoring options through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from scurate.cli import app
from typer.testing import CliRunner

from conftest import TYPES, make_adata, write_h5ad

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def fails_in_one_line(args: list[str | Path], *needles: str) -> None:
    code, _, err = run(*args)
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("scurate: error: "), err
    for needle in needles:
        assert needle in err, err


def deposits(tmp_path: Path, programs: np.ndarray) -> list[Path]:
    rng = np.random.default_rng(21)
    atlas = make_adata(rng, programs, TYPES, [200, 150, 100, 100, 8], prefix="a")
    subset = atlas[atlas.obs["cell_type"] == "T"].copy()  # a per-lineage subset, re-deposited
    subset.obs_names = [f"t{i}" for i in range(subset.n_obs)]
    return [
        write_h5ad(atlas, tmp_path / "atlas.h5ad"),
        write_h5ad(subset, tmp_path / "t_cells.h5ad"),
    ]


def test_select_calls_out_a_contained_dataset(tmp_path: Path, programs: np.ndarray) -> None:
    paths = deposits(tmp_path, programs)
    code, out, err = run("select", *paths, "-b", "100", "-o", tmp_path / "out")
    assert code == 0, err
    assert "t_cells (in atlas)" in out
    assert "t_cells: 100 % of its cells are in atlas (200 exact, 0 near)" in out
    manifest = pl.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert manifest.filter(pl.col("selected"), pl.col("dataset_id") == "t_cells").height == 0


def test_score_then_select_with_a_chosen_eps(tmp_path: Path, programs: np.ndarray) -> None:
    paths = deposits(tmp_path, programs)
    code, out, err = run("score", *paths, "-o", tmp_path / "scores")
    assert code == 0, err
    assert "nearest-neighbour distance" in out and "near-duplicate eps" in out
    table = pl.read_parquet(tmp_path / "scores" / "neighbours.parquet")
    eps = float(table["nn_distance"].quantile(0.01))
    code, out, err = run(
        "select", *paths, "-b", "50", "-o", tmp_path / "sel", "--near-dup-eps", eps, "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["scores"]["near"]["eps"] == eps
    assert report["scores"]["near"]["eps_rule"] == "given with --near-dup-eps"


def test_index_build_and_select_against_it(tmp_path: Path, programs: np.ndarray) -> None:
    atlas, subset = deposits(tmp_path, programs)
    code, out, err = run("index", "build", atlas, "-o", tmp_path / "atlas.idx")
    assert code == 0, err
    assert "indexed 558 cells of 1 datasets" in out
    new = make_adata(np.random.default_rng(22), programs, TYPES, [50, 0, 0, 0, 20], prefix="n")
    new_path = write_h5ad(new, tmp_path / "new.h5ad")
    code, out, err = run(
        "select",
        new_path,
        subset,
        "-b",
        "10",
        "-o",
        tmp_path / "o",
        "--reference",
        tmp_path / "atlas.idx",
        "--json",
    )
    assert code == 0, err
    manifest = pl.read_parquet(tmp_path / "o" / "manifest.parquet")
    copies = manifest.filter(pl.col("dataset_id") == "t_cells")
    fresh = manifest.filter(pl.col("dataset_id") == "new")
    # cells already in the reference are the least novel; the new batch is not
    assert copies["novelty"].max() < fresh["novelty"].median()
    assert copies["nearest_reference"].str.starts_with("atlas/").all()


def test_scoring_options_fail_in_one_line(tmp_path: Path, programs: np.ndarray) -> None:
    paths = deposits(tmp_path, programs)
    out = tmp_path / "o"
    fails_in_one_line(
        ["select", *paths, "-b", "5", "-o", out, "--near-dup-eps", "-2"],
        "--near-dup-eps -2.0: must be a distance",
    )
    fails_in_one_line(
        ["select", *paths, "-b", "5", "-o", out, "--index-factory", "Nope"],
        "--index-factory Nope: FAISS cannot build it",
    )
    fails_in_one_line(
        ["select", *paths, "-b", "5", "-o", out, "--dup-min-genes", "0"],
        "--dup-min-genes 0: must be at least 1",
    )
    fails_in_one_line(
        ["select", *paths, "-b", "700", "-o", out, "--qc", "off"],
        "--budget 700 is more than the 558 cells left",
        "--keep-duplicates",
    )
    fails_in_one_line(
        ["select", *paths, "-b", "5", "-o", out, "--reference", tmp_path / "none"],
        "none: no such file or folder",
    )
    fails_in_one_line(["index", "build", "-o", tmp_path / "x.idx"], "no sources")
    fails_in_one_line(["score", "-o", tmp_path / "s"], "no sources")
    (tmp_path / "file").write_text("x")
    fails_in_one_line(["score", *paths, "-o", tmp_path / "file"], "exists and is not a folder")
    assert not any(p.name.endswith(".partial") for p in tmp_path.rglob("*"))

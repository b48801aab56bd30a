"""scurate materialize on a real selection of two real h5ad files: shards read back with
anndata, shuffling, resuming after a crash or a kill, and every bad input as one line."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anndata as ad
import numpy as np
import polars as pl
import pytest
import scurate
from scurate.cli import app
from typer.testing import CliRunner

from conftest import rows_on_symbols, select_two_labs, selected_cells

mz = importlib.import_module("scurate._feed.shards")  # the module behind scurate.materialize
BUDGET = 300
runner = CliRunner()


@pytest.fixture(scope="module")
def selected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lab_a: symbols; lab_b: versioned Ensembl ids, symbols in var, 90 % of the genes,
    shuffled; a selection of 300 of 1598 cells."""
    return select_two_labs(tmp_path_factory.mktemp("materialize"), BUDGET, seed=5)


def _read_back(shards: Path) -> ad.AnnData:
    index = json.loads((shards / "index.json").read_text())
    read = ad.read_h5ad if index["format"] == "h5ad" else ad.read_zarr
    parts = [read(shards / s["file"]) for s in index["shards"]]
    for part, entry in zip(parts, index["shards"], strict=True):
        assert part.n_obs == entry["n_obs"]
        assert entry["rank_min"] == part.obs["selection_rank"].min()
        assert entry["rank_max"] == part.obs["selection_rank"].max()
    return ad.concat(parts, merge="same")


def _check_against_sources(shards: Path, selection: Path) -> ad.AnnData:
    """Every selected cell once, its X the source row on the shards' genes, its obs right."""
    back = _read_back(shards)
    index = json.loads((shards / "index.json").read_text())
    truth = selected_cells(selection)
    assert back.n_obs == BUDGET and back.obs_names.is_unique
    assert set(back.obs_names) == set(truth["cell_id"].to_list())
    assert back.X.dtype == np.float32 and back.X.format == "csr"
    assert list(back.var_names) == index["gene_names"]
    got = (
        pl.DataFrame(
            {
                "cell_id": list(back.obs_names),
                **{c: back.obs[c].to_numpy() for c in ("source_row", "selection_rank", "weight")},
                **{c: back.obs[c].astype(str).to_list() for c in ("dataset_id", "cell_type")},
            }
        )
        .with_row_index("i")
        .join(truth, on="cell_id", suffix="_m")
    )
    assert got.height == BUDGET
    for column in ("dataset_id", "cell_type", "weight", "selection_rank"):
        assert (got[column].cast(pl.String) == got[f"{column}_m"].cast(pl.String)).all(), column
    assert (got["source_row"] == got["row"].cast(pl.Int64)).all()
    assert got["cell_type"].null_count() == 0
    for (source,), part in got.group_by(["source"]):
        expected = rows_on_symbols(str(source), part["row"].to_numpy(), back.var_names.to_numpy())
        assert np.array_equal(back.X[part["i"].to_numpy()].toarray(), expected)
    assert index["sources"] == {
        d: s for d, s in truth.select("dataset_id", "source").unique().iter_rows()
    }
    return back


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_shards_read_back_equal_the_source_rows(selected: Path, tmp_path: Path, fmt: str) -> None:
    result = scurate.materialize(selected, tmp_path / "shards", format=fmt, shard_size=128)
    assert (result.written, result.skipped, result.n_cells) == (3, 0, BUDGET)
    names = sorted(p.name for p in (tmp_path / "shards").iterdir())
    assert names == ["index.json", *(f"shard-{k:05d}.{fmt}" for k in range(3))]
    back = _check_against_sources(tmp_path / "shards", selected)
    assert np.array_equal(back.obs["selection_rank"], np.arange(BUDGET))  # priority order
    index = result.index
    assert [s["n_obs"] for s in index["shards"]] == [128, 128, 44]
    assert index["complete"] and index["genes"]["kind"] == "symbol"
    assert index["options"]["shard_size"] == 128 and index["selection"]["n_cells"] == BUDGET


def test_shuffled_shards_depend_only_on_the_seed(selected: Path, tmp_path: Path) -> None:
    def order(name: str, seed: int) -> list[str]:
        scurate.materialize(selected, tmp_path / name, shard_size=70, shuffle=True, seed=seed)
        return list(_read_back(tmp_path / name).obs_names)

    first = order("a", 1)
    assert order("b", 1) == first
    assert order("c", 2) != first
    assert sorted(first) == sorted(selected_cells(selected)["cell_id"].to_list())
    ranks = _read_back(tmp_path / "a").obs["selection_rank"].to_numpy()
    assert not np.array_equal(ranks, np.sort(ranks))
    _check_against_sources(tmp_path / "a", selected)


def test_budget_and_a_gene_file(selected: Path, tmp_path: Path) -> None:
    genes = tmp_path / "genes.txt"
    genes.write_text("# panel\nSG0010\n\nSG0003\nSG0297\n")
    result = scurate.materialize(selected, tmp_path / "s", shard_size=50, budget=120, genes=genes)
    back = _read_back(tmp_path / "s")
    assert list(back.var_names) == ["SG0010", "SG0003", "SG0297"]
    assert np.array_equal(back.obs["selection_rank"], np.arange(120))
    assert result.index["options"]["genes"] == "list"
    truth = selected_cells(selected).head(120)
    for (source,), part in truth.with_row_index("i").group_by(["source"]):
        expected = rows_on_symbols(str(source), part["row"].to_numpy(), back.var_names.to_numpy())
        assert np.array_equal(back.X[part["i"].to_numpy()].toarray(), expected)


def test_a_crash_mid_shard_resumes_without_duplicates(
    selected: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "shards"
    real_write = mz._write
    calls = []

    def dies_on_the_fourth(adata: ad.AnnData, path: Path, fmt: str) -> None:
        calls.append(path)
        real_write(adata, path, fmt)
        if len(calls) == 4:  # written under its temporary name, never renamed
            raise KeyboardInterrupt

    monkeypatch.setattr(mz, "_write", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        scurate.materialize(selected, out, shard_size=40)
    assert (out / ".shard-00003.h5ad.partial").exists()
    assert not (out / "shard-00003.h5ad").exists()
    assert len(json.loads((out / "index.json").read_text())["shards"]) == 3
    monkeypatch.setattr(mz, "_write", real_write)
    result = scurate.materialize(selected, out, shard_size=40)
    assert (result.written, result.skipped) == (5, 3)
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]
    _check_against_sources(out, selected)
    # a shard deleted by hand, and one rewritten short behind the index's back, are written again
    (out / "shard-00007.h5ad").unlink()
    short = ad.read_h5ad(out / "shard-00001.h5ad")[:5].copy()
    short.write_h5ad(out / "shard-00001.h5ad")
    result = scurate.materialize(selected, out, shard_size=40)
    assert (result.written, result.skipped) == (2, 6)
    _check_against_sources(out, selected)


def test_a_killed_run_resumes_without_duplicates(selected: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    script = textwrap.dedent(
        f"""
        import importlib
        import time
        mz = importlib.import_module("scurate._feed.shards")
        real = mz._write
        def slow(adata, path, fmt):
            real(adata, path, fmt)
            time.sleep(0.5)  # a window in which the kill lands between write and rename
        mz._write = slow
        mz.materialize({str(selected)!r}, {str(out)!r}, shard_size=60, format="zarr")
        """
    )
    # run outside the source tree, so the child imports scurate as installed (with its native
    # core), not the checkout's scurate/ folder that `python -c` would put first on sys.path
    child = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path)
    try:
        index = out / "index.json"
        while child.poll() is None:
            if index.exists() and json.loads(index.read_text())["shards"]:
                break
            time.sleep(0.05)
        assert child.poll() is None, f"the child stopped by itself (exit {child.returncode})"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    done = json.loads(index.read_text())["shards"]
    assert 1 <= len(done) < 5
    result = scurate.materialize(selected, out, shard_size=60, format="zarr")
    assert result.skipped == len(done) and result.written == 5 - len(done)
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]
    _check_against_sources(out, selected)


def _fails_in_one_line(args: list[str | Path], *needles: str) -> None:
    result = runner.invoke(app, ["materialize", *map(str, args)])
    err = result.stderr
    assert result.exit_code == 1, (result.exit_code, err, result.stdout)
    assert err.count("\n") == 1 and err.startswith("scurate: error: "), err
    for needle in needles:
        assert needle in err, err


def test_the_command_and_its_bad_input(selected: Path, tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    result = runner.invoke(
        app, ["materialize", str(selected), "-o", str(shards), "--shard-size", "100", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["n_cells"], summary["n_shards"], summary["written"]) == (BUDGET, 3, 3)
    again = runner.invoke(
        app, ["materialize", str(selected), "-o", str(shards), "--shard-size", "100"]
    )
    assert again.exit_code == 0 and "3 already complete" in again.stdout
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    _fails_in_one_line([tmp_path / "nowhere", "-o", shards], "nowhere: no such selection")
    _fails_in_one_line([tmp_path, "-o", tmp_path / "s"], "no manifest.parquet")
    _fails_in_one_line([selected], "-o/--out")
    _fails_in_one_line([selected, "-o", tmp_path / "s", "--format", "csv"], "--format csv")
    _fails_in_one_line([selected, "-o", tmp_path / "s", "--shard-size", "0"], "--shard-size 0")
    _fails_in_one_line([selected, "-o", tmp_path / "s", "--budget", "0"], "--budget 0")
    _fails_in_one_line([selected, "-o", tmp_path / "s", "-b", "301"], "--budget 301 is larger")
    _fails_in_one_line([selected, "-o", tmp_path / "s", "--genes", "no.txt"], "no.txt: no such")
    _fails_in_one_line(
        [selected, "-o", tmp_path / "s", "--genes", tmp_path / "empty.txt"], "gene list is empty"
    )
    _fails_in_one_line(
        [selected, "-o", shards, "--shard-size", "50"], "other options (shard_size: 100 there"
    )
    _fails_in_one_line(
        [selected, "-o", shards, "--shard-size", "100", "--shuffle"], "other options (shuffle"
    )
    _fails_in_one_line(
        [selected, "-o", shards, "--shard-size", "100", "--format", "zarr"], "format"
    )
    _fails_in_one_line([selected, "-o", tmp_path / "other"], "not empty and holds no index.json")
    _fails_in_one_line([selected, "-o", tmp_path / "afile"], "afile: exists and is not a folder")
    assert not (tmp_path / "s").exists()
    (shards / "index.json").write_text("{not json")
    _fails_in_one_line([selected, "-o", shards], "index.json: not an index of scurate")
    replaced = runner.invoke(
        app, ["materialize", str(selected), "-o", str(shards), "--shard-size", "150", "--overwrite"]
    )
    assert replaced.exit_code == 0, replaced.stderr
    assert sorted(p.name for p in shards.iterdir()) == [
        "index.json",
        "shard-00000.h5ad",
        "shard-00001.h5ad",
    ]
    kept = runner.invoke(
        app, ["materialize", str(selected), "-o", str(tmp_path / "other"), "--overwrite"]
    )
    assert kept.exit_code == 0 and (tmp_path / "other" / "notes.txt").read_text() == "mine"

"""scurate materialize on a real selection of two real h5ad files: shards read back with
anndata, shuffling, resuming after a crash or a kill, and every bad input as one line."""

from __future__ import annotations

import importlib
import json
import os
import shutil
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
from scurate._data import manifest as mf
from scurate.cli import app
from scurate.errors import InputError
from typer.testing import CliRunner

from conftest import rows_on_symbols, select_two_labs, selected_cells, write_selection_folder

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


def _own_copy(selected: Path, tmp_path: Path) -> Path:
    """A copy of the selection whose manifest names copies of its sources in ``tmp_path``."""
    for name in ("lab_a.h5ad", "lab_b.h5ad"):
        shutil.copy(selected.parent / name, tmp_path / name)
    frame = mf.read_manifest(selected / "manifest.parquet").with_columns(
        pl.col("source").str.replace(str(selected.parent), str(tmp_path), literal=True)
    )
    (tmp_path / "sel").mkdir()
    return write_selection_folder(frame, tmp_path / "sel")


@pytest.mark.parametrize("where", ["../x.h5ad", "ABSOLUTE", "sub/shard-00000.h5ad", "other"])
def test_shard_paths_in_index_json_are_only_this_folders_own(
    selected: Path, tmp_path: Path, where: str
) -> None:
    out = tmp_path / "shards"
    scurate.materialize(selected, out, shard_size=100)
    outside = tmp_path / "x.h5ad"  # a complete shard, where the index must not lead
    shutil.copy(out / "shard-00000.h5ad", outside)
    (out / "sub").mkdir()
    shutil.copy(out / "shard-00000.h5ad", out / "sub" / "shard-00000.h5ad")
    listed = {"ABSOLUTE": str(outside), "other": "shard-00001.h5ad"}.get(where, where)
    index = json.loads((out / "index.json").read_text())
    index["shards"][0]["file"] = listed
    (out / "index.json").write_text(json.dumps(index))
    before = outside.read_bytes()
    with pytest.raises(mz.OptionError) as err:
        scurate.materialize(selected, out, shard_size=100)
    assert str(err.value) == (
        f"{out / 'index.json'}: lists {listed!r} as shard 0; only this folder's "
        "shard-00000.h5ad to shard-00002.h5ad are read; give another folder or --overwrite"
    )
    _fails_in_one_line([selected, "-o", out, "--shard-size", "100"], f"lists {listed!r}")
    assert outside.read_bytes() == before and (out / "sub" / "shard-00000.h5ad").is_file()
    result = scurate.materialize(selected, out, shard_size=100, overwrite=True)
    assert result.written == 3
    assert outside.read_bytes() == before and (out / "sub" / "shard-00000.h5ad").is_file()
    _check_against_sources(out, selected)


def test_a_shard_that_is_a_link_is_written_again_and_its_target_kept(
    selected: Path, tmp_path: Path
) -> None:
    out = tmp_path / "shards"
    scurate.materialize(selected, out, shard_size=100)
    elsewhere = tmp_path / "elsewhere.h5ad"
    (out / "shard-00001.h5ad").rename(elsewhere)
    before = elsewhere.read_bytes()
    (out / "shard-00001.h5ad").symlink_to(elsewhere)
    result = scurate.materialize(selected, out, shard_size=100)
    assert (result.written, result.skipped) == (1, 2)
    assert not (out / "shard-00001.h5ad").is_symlink()
    assert elsewhere.read_bytes() == before
    _check_against_sources(out, selected)


def test_a_source_changed_since_the_shards_were_made_is_refused(
    selected: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sel = _own_copy(selected, tmp_path)
    out = tmp_path / "shards"
    real_write = mz._write

    def dies_on_the_second(adata: ad.AnnData, path: Path, fmt: str) -> None:
        if path.name.startswith(".shard-00001"):
            raise KeyboardInterrupt
        real_write(adata, path, fmt)

    monkeypatch.setattr(mz, "_write", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        scurate.materialize(sel, out, shard_size=100)
    monkeypatch.setattr(mz, "_write", real_write)
    index = json.loads((out / "index.json").read_text())
    lab_b = tmp_path / "lab_b.h5ad"
    stat = lab_b.stat()
    assert index["source_files"][str(lab_b)] == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    assert len(index["shards"]) == 1
    # the same cells, other values: what the loader's own checks cannot see
    cells = ad.read_h5ad(lab_b)
    cells.X = cells.X * 2
    cells.write_h5ad(lab_b)
    shard = (out / "shard-00000.h5ad").read_bytes()
    with pytest.raises(mz.InputError) as err:
        scurate.materialize(sel, out, shard_size=100)
    assert str(err.value).startswith(f"{lab_b}: the source changed since the shards in {out}")
    assert str(err.value).endswith("; give another folder or --overwrite")
    _fails_in_one_line([sel, "-o", out, "--shard-size", "100"], f"{lab_b}: the source changed")
    assert (out / "shard-00000.h5ad").read_bytes() == shard, "nothing there was touched"
    # a touch alone (same size) is a change too
    lab_a = tmp_path / "lab_a.h5ad"
    index["source_files"][str(lab_b)] = {"size": lab_b.stat().st_size, "mtime_ns": 0}
    index["source_files"][str(lab_a)]["mtime_ns"] += 1
    (out / "index.json").write_text(json.dumps(index))
    with pytest.raises(
        mz.InputError, match=r"lab_a\.h5ad: the source changed .*\(modified since\)"
    ):
        scurate.materialize(sel, out, shard_size=100)
    del index["source_files"]  # an index of an earlier scurate: nothing to check against
    (out / "index.json").write_text(json.dumps(index))
    with pytest.raises(mz.InputError, match=r"lab_a\.h5ad: the source changed .*not recorded"):
        scurate.materialize(sel, out, shard_size=100)
    result = scurate.materialize(sel, out, shard_size=100, overwrite=True)
    assert result.written == 3


def test_a_source_changed_while_materialize_reads_it_is_refused(
    selected: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sel = _own_copy(selected, tmp_path)
    out = tmp_path / "shards"
    real_write = mz._write
    lab_a = tmp_path / "lab_a.h5ad"

    def touches_a_source(adata: ad.AnnData, path: Path, fmt: str) -> None:
        real_write(adata, path, fmt)
        os.utime(lab_a, ns=(lab_a.stat().st_atime_ns, lab_a.stat().st_mtime_ns + 10**9))

    monkeypatch.setattr(mz, "_write", touches_a_source)
    with pytest.raises(mz.InputError, match=r"lab_a\.h5ad: the source changed while materialize"):
        scurate.materialize(sel, out, shard_size=100)
    assert json.loads((out / "index.json").read_text())["complete"] is False


def test_a_second_materialize_into_the_same_folder_is_one_line(
    selected: Path, tmp_path: Path
) -> None:
    import fcntl
    import os

    out = tmp_path / "shards"
    out.mkdir()
    held = os.open(out, os.O_RDONLY)  # a run that is writing there now holds the folder
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(InputError) as err:
            scurate.materialize(selected, out, shard_size=100)
        assert str(err.value) == (
            f"{out}: another materialize is writing into this folder; wait for it to finish, "
            "or give another folder"
        )
        assert list(out.iterdir()) == []
    finally:
        os.close(held)
    done = scurate.materialize(selected, out, shard_size=100)  # once it has finished
    assert done.written == 3 and done.index["complete"]
    again = scurate.materialize(selected, out, shard_size=100)
    assert again.skipped == 3

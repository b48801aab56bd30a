"""Output folders written as one unit: checked before any work, never mixed across runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import scurate
from scurate._data import atomic
from scurate.cli import app
from scurate.errors import InputError
from scurate.loader import CellLoader
from typer.testing import CliRunner

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stderr


def one_line(args: list[str | Path], *needles: str) -> str:
    code, err = run(*args)
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("scurate: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


def test_an_earlier_run_is_replaced_only_with_overwrite(
    two_labs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run("select", *two_labs, "-b", "20", "-o", out, "--no-cache")[0] == 0
    first = (out / "manifest.parquet").read_bytes()
    one_line(
        ["select", *two_labs, "-b", "30", "-o", out, "--no-cache"],
        f"--out {out}: holds an earlier run (manifest.parquet, report.json, report.html); "
        "give --overwrite "
        "to replace it",
    )
    assert (out / "manifest.parquet").read_bytes() == first  # untouched
    one_line(["score", *two_labs, "-o", out, "--no-cache"], "holds an earlier run")
    assert run("select", *two_labs, "-b", "30", "-o", out, "--no-cache", "--overwrite")[0] == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_selected"] == 30
    assert set(report["written"]) == {"manifest.parquet"}
    assert CellLoader(out).n_cells == 30
    with pytest.raises(InputError, match="holds an earlier run"):
        scurate.select_to_dir(two_labs, 10, out=out)
    assert scurate.select_to_dir(two_labs, 10, out=out, overwrite=True).report["n_selected"] == 10


def test_an_unwritable_output_is_one_line_before_any_work(
    two_labs: list[Path], tmp_path: Path
) -> None:
    (tmp_path / "a_file").write_text("x")
    for out, text in [
        (tmp_path / "a_file", "exists and is not a folder"),
        (tmp_path / "a_file" / "out", "is a file, so no folder can be made under it"),
        (Path("/proc/scurate-out"), "cannot write in '/proc'"),
    ]:
        one_line(["select", *two_labs, "-b", "5", "-o", out], text)
    assert not (tmp_path / "scurate-work").exists()  # refused before the pool was computed
    assert {p.name for p in tmp_path.iterdir()} == {"a_file", *(p.name for p in two_labs)}


def test_a_run_killed_before_its_record_leaves_no_complete_folder(
    two_labs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    scurate.select_to_dir(two_labs, 20, out=out)

    def killed(data: object, path: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        scurate.select_to_dir(two_labs, 40, out=out, overwrite=True)
    monkeypatch.undo()
    # the new manifest is there, the earlier report is gone: nothing reads it as complete
    assert (out / "manifest.parquet").exists() and not (out / "report.json").exists()
    with pytest.raises(InputError, match=r"out: no report.json, so the run that wrote it did not"):
        CellLoader(out)
    with pytest.raises(InputError, match="no report.json"):
        scurate.materialize(out, tmp_path / "shards")


def test_files_of_two_runs_do_not_match_one_record(two_labs: list[Path], tmp_path: Path) -> None:
    scurate.select_to_dir(two_labs, 20, out=tmp_path / "a")
    scurate.select_to_dir(two_labs, 30, out=tmp_path / "b")
    shutil.copy(tmp_path / "b" / "manifest.parquet", tmp_path / "a" / "manifest.parquet")
    with pytest.raises(InputError, match=r"a/manifest.parquet: does not match .*report.json"):
        CellLoader(tmp_path / "a")
    with pytest.raises(InputError, match="does not match"):
        CellLoader(tmp_path / "a" / "manifest.parquet")


def test_index_build_and_materialize_check_their_output_first(
    two_labs: list[Path], tmp_path: Path
) -> None:
    (tmp_path / "a_file").write_text("x")
    for out, text in [
        (tmp_path / "a_file" / "out", "is a file, so no folder can be made under it"),
        (Path("/proc/scurate-out"), "cannot write in '/proc'"),
    ]:
        one_line(["index", "build", *two_labs, "-o", out], text)
    scurate.select_to_dir(two_labs, 20, out=tmp_path / "sel")
    for out, text in [
        (tmp_path / "a_file" / "out", "is a file, so no folder can be made under it"),
        (Path("/proc/scurate-out"), "cannot write in '/proc'"),
    ]:
        one_line(["materialize", tmp_path / "sel", "-o", out], text)

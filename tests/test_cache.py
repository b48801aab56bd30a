"""The work directory: a second select reuses the scored pool, gives the same manifest as a run
without it, and recomputes whatever an input or option change touches."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
import scurate
from polars.testing import assert_frame_equal
from scurate._data import spill
from scurate._engine.cache import WorkDir
from scurate.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def entries(work: Path) -> list[Path]:
    return sorted(work.glob("pool-*"))


def test_a_second_select_reuses_the_pool_and_selects_the_same(
    two_labs: list[Path], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    first = scurate.select(two_labs, 40, seed=2, work_dir=work)
    assert first.report["work_dir"]["reused"] is False and len(entries(work)) == 1
    again = scurate.select(two_labs, 60, seed=2, policy="facility", work_dir=work)
    assert again.report["work_dir"]["reused"] is True
    assert (
        "embed" not in again.report["timings_s"] and "neighbours" not in again.report["timings_s"]
    )
    plain = scurate.select(two_labs, 60, seed=2, policy="facility")
    assert_frame_equal(again.manifest, plain.manifest)
    for key in (
        "duplicates",
        "overlap",
        "coverage",
        "harmonization",
        "covering_radius",
        "datasets",
    ):
        assert again.report[key] == plain.report[key], key
    strata = scurate.select(two_labs, 30, seed=2, strata="dataset_id", work_dir=work)
    assert strata.report["work_dir"]["reused"] is True
    assert_frame_equal(
        strata.manifest, scurate.select(two_labs, 30, seed=2, strata="dataset_id").manifest
    )


def test_a_pool_on_disk_is_stored_and_reused_mapped(
    two_labs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every large array spilled, the entry is written block by block and read back
    mapped, and the selection from it equals one computed in memory without a work dir."""
    plain = scurate.select(two_labs, 50, seed=3, policy="facility").manifest
    monkeypatch.setattr(spill, "SPILL_BYTES", 0)
    work = tmp_path / "work"
    first = scurate.select(two_labs, 50, seed=3, policy="facility", work_dir=work)
    (entry,) = entries(work)
    assert sorted(p.name for p in (entry / "arrays").glob("*.npy")) >= [
        "density.npy",
        "exact_dup_of.npy",
        "graph_dist.npy",
        "graph_rows.npy",
    ]
    stored = WorkDir(work).load(entry.name.removeprefix("pool-"))
    assert stored is not None
    assert spill.spilled(stored["embedding"]) and spill.spilled(stored["arrays"]["graph_rows"])
    again = scurate.select(two_labs, 50, seed=3, policy="facility", work_dir=work)
    assert again.report["work_dir"]["reused"] is True
    assert_frame_equal(first.manifest, plain)
    assert_frame_equal(again.manifest, plain)


def test_a_first_run_goes_on_from_the_entry_it_stored(
    two_labs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After storing the pool, the first run reads it back (lean columns, large arrays mapped)
    and selects from that, as a rerun would; where the entry cannot be read back it computes
    the pool again and still selects the same."""
    plain = scurate.select(two_labs, 50, seed=4).manifest
    loaded: list[bool] = []
    load = WorkDir.load

    def counted(self: WorkDir, key: str) -> dict[str, object] | None:
        stored = load(self, key)
        loaded.append(stored is not None)
        return stored

    monkeypatch.setattr(WorkDir, "load", counted)
    first = scurate.select(two_labs, 50, seed=4, work_dir=tmp_path / "work")
    assert loaded == [False, True]  # not there yet; then read back after it was stored
    assert first.report["work_dir"]["reused"] is False
    assert first.report["work_dir"]["entry"] == str(entries(tmp_path / "work")[0])
    assert_frame_equal(first.manifest, plain)
    monkeypatch.setattr(WorkDir, "load", lambda self, key: None)  # never readable
    blind = scurate.select(two_labs, 50, seed=4, work_dir=tmp_path / "other")
    assert_frame_equal(blind.manifest, plain)


def test_a_changed_input_or_option_computes_again(two_labs: list[Path], tmp_path: Path) -> None:
    work = tmp_path / "work"
    scurate.select(two_labs, 40, work_dir=work)
    assert scurate.select(two_labs, 40, seed=1, work_dir=work).report["work_dir"]["reused"] is False
    eps = scurate.select(two_labs, 40, near_dup_eps=0.01, work_dir=work).report["work_dir"]
    assert eps["reused"] is False
    stat = two_labs[0].stat()
    os.utime(two_labs[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten
    assert scurate.select(two_labs, 40, work_dir=work).report["work_dir"]["reused"] is False
    assert len(entries(work)) == 4
    assert scurate.select(two_labs, 40, work_dir=work).report["work_dir"]["reused"] is True


def test_other_metadata_harmonizes_again_and_reuses_the_scores(
    two_labs: list[Path], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    scurate.select(two_labs, 40, seed=3, work_dir=work)
    tissue = scurate.select(two_labs, 40, seed=3, set_fields=["tissue=lung"], work_dir=work)
    assert tissue.report["work_dir"]["reused"] is True and len(entries(work)) == 1
    assert "harmonize" in tissue.report["timings_s"] and "embed" not in tissue.report["timings_s"]
    assert set(tissue.manifest["tissue"].to_list()) == {"lung"}
    plain = scurate.select(two_labs, 40, seed=3, set_fields=["tissue=lung"])
    assert_frame_equal(tissue.manifest, plain.manifest)
    assert tissue.report["harmonization"] == plain.report["harmonization"]
    assert tissue.report["coverage"] == plain.report["coverage"]
    back = scurate.select(two_labs, 40, seed=3, work_dir=work)  # the stored harmonization
    assert back.report["work_dir"]["reused"] is True
    assert "lung" not in set(back.manifest["tissue"].drop_nulls().to_list())


def test_a_partial_or_broken_entry_is_computed_again(
    two_labs: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    work = tmp_path / "work"
    whole = scurate.select(two_labs, 50, work_dir=work)
    [entry] = entries(work)
    # a run killed while writing leaves only a hidden partial folder: never read as complete
    shutil.move(entry, work / f".{entry.name}.123.partial")
    assert scurate.select(two_labs, 50, work_dir=work).report["work_dir"]["reused"] is False
    [entry] = entries(work)
    (entry / "embedding.npy").write_bytes(b"not an array")
    again = scurate.select(two_labs, 50, work_dir=work)
    assert again.report["work_dir"]["reused"] is False
    assert "unreadable" in caplog.text
    assert_frame_equal(again.manifest, whole.manifest)
    assert scurate.select(two_labs, 50, work_dir=work).report["work_dir"]["reused"] is True


def test_the_cli_keeps_the_pool_beside_the_output(two_labs: list[Path], tmp_path: Path) -> None:
    args = ["select", *map(str, two_labs), "-b", "30"]
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "a")])
    assert first.exit_code == 0, first.stderr
    assert len(entries(tmp_path / "scurate-work")) == 1
    second = runner.invoke(app, [*args, "-b", "45", "-o", str(tmp_path / "b")])
    assert second.exit_code == 0, second.stderr
    report = pl.read_json(tmp_path / "b" / "report.json")
    assert report["work_dir"][0]["reused"] is True
    none = runner.invoke(app, [*args, "-o", str(tmp_path / "c" / "out"), "--no-cache"])
    assert none.exit_code == 0 and not (tmp_path / "c" / "scurate-work").exists()
    (tmp_path / "afile").write_text("x")
    bad = runner.invoke(
        app, [*args, "-o", str(tmp_path / "d"), "--work-dir", str(tmp_path / "afile")]
    )
    assert bad.exit_code == 1
    assert (
        bad.stderr
        == f"scurate: error: --work-dir {tmp_path / 'afile'}: exists and is not a folder\n"
    )


def test_cache_command_lists_sizes_and_clears_only_its_pools(
    two_labs: list[Path], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    scurate.select(two_labs, 20, work_dir=work)
    (work / "notes.txt").write_text("mine")
    (work / ".pool-abc.99.partial").mkdir()
    listed = runner.invoke(app, ["cache", "list", "--work-dir", str(work), "--json"])
    assert listed.exit_code == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["n_cells"] == 1598 and row["bytes"] > 0
    assert row["sources"] == sorted(str(p.resolve()) for p in two_labs)
    size = runner.invoke(app, ["cache", "size", "--work-dir", str(work)])
    assert size.exit_code == 0 and "in 1 pools" in size.stdout
    cleared = runner.invoke(app, ["cache", "clear", "--work-dir", str(work)])
    assert cleared.exit_code == 0 and cleared.stdout.startswith("removed 2 pools")
    assert [p.name for p in work.iterdir()] == ["notes.txt"]
    (tmp_path / "afile").write_text("x")
    bad = runner.invoke(app, ["cache", "list", "--work-dir", str(tmp_path / "afile")])
    assert bad.exit_code == 1 and "exists and is not a folder" in bad.stderr

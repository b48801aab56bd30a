"""A run's output folder, written as one unit.

Before any computation, :func:`prepare` checks that the folder can be written and does not hold
an earlier run (unless ``overwrite``). :func:`commit` then removes the earlier run's record
first, writes every file under a temporary name and renames it, and writes the record last
(``report.json`` or ``bench.json``), with the size and SHA-256 of each file beside it. A folder
is complete when its record is there and matches its files (:func:`check_complete`): a run
killed midway leaves no record, and files of two runs never match one record.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from scurate._data import atomic
from scurate.errors import InputError

# the files of a select, score or bench run: a folder holding any of them holds a run
RUN_FILES = (
    "manifest.parquet",
    "neighbours.parquet",
    "report.json",
    "report.html",
    "bench.json",
    "bench.html",
    "selections.parquet",
)
RECORDS = ("report.json", "bench.json")  # written last; ``written`` lists the files before
HASH_BLOCK = 1 << 22


def prepare(out: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """The output folder ``out``, checked before any work (nothing is made yet): one line when
    it is a file, cannot be made or written, or holds an earlier run and ``overwrite`` is not
    given."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        msg = f"out='{folder}': exists and is not a folder"
        raise InputError(msg)
    earlier = [name for name in RUN_FILES if (folder / name).exists()]
    if earlier and not overwrite:
        msg = (
            f"out='{folder}': holds an earlier run ({', '.join(earlier)}); give overwrite=True "
            "to replace it, or another folder"
        )
        raise InputError(msg)
    atomic.check_writable(folder)  # the folder is made when the run writes
    return folder


def digest(path: Path) -> dict[str, Any]:
    """A file's size and SHA-256."""
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(HASH_BLOCK):
            sha.update(block)
    return {"bytes": path.stat().st_size, "sha256": sha.hexdigest()}


def commit(
    folder: Path,
    files: Mapping[str, Callable[[Path], object]],
    record: tuple[str, Callable[[dict[str, Any]], dict[str, Any]]],
) -> None:
    """Write a run into ``folder`` as one unit: the earlier record removed first, then each of
    ``files`` (name -> writer of a temporary path, renamed into place), then the record
    (``(name, build)``; ``build(written)`` returns the JSON to write, given the size and hash of
    each file)."""
    name, build = record
    for stale in RECORDS:
        (folder / stale).unlink(missing_ok=True)
    written: dict[str, Any] = {}
    for file, write in files.items():
        with atomic.atomic(folder / file) as tmp:
            write(tmp)
        written[file] = digest(folder / file)
    atomic.write_json(build(written), folder / name)


def check_complete(folder: Path, name: str = "report.json") -> dict[str, Any]:
    """The record of a complete run in ``folder``, or one line saying why it is not one."""
    import json

    path = folder / name
    if not path.is_file():
        msg = (
            f"{folder}: no {name}, so the run that wrote it did not finish "
            "(or this is not an output folder of scurate); run it again"
        )
        raise InputError(msg)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{path}: cannot read ({type(exc).__name__}: {exc})"
        raise InputError(msg) from exc
    if not isinstance(data, dict):
        msg = f"{path}: not a record of scurate (a JSON object was expected)"
        raise InputError(msg)
    record: dict[str, Any] = data
    written = record.get("written")
    if not isinstance(written, dict):
        return record  # written by a version that kept no record of its files
    for file, expected in written.items():
        target = folder / str(file)
        if not target.is_file() or digest(target) != expected:
            msg = (
                f"{target}: does not match {path} (files of two runs, or one changed since); "
                "run it again"
            )
            raise InputError(msg)
    return record

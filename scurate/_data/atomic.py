"""Outputs that exist only complete: write under a temporary name beside the target, then
rename it into place (a file, or a whole folder), so an interrupted run never leaves an output
that looks finished. The one place scurate writes an output file."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PARTIAL = ".partial"  # suffix of the temporary names (a leading dot hides them)


def partial_name(path: Path, *, unique: bool = False) -> Path:
    """The temporary name of ``path``: ``.NAME.partial`` (``.NAME.PID.partial`` if ``unique``,
    for outputs that several processes may write at once)."""
    pid = f".{os.getpid()}" if unique else ""
    return path.with_name(f".{path.name}{pid}{PARTIAL}")


def is_partial(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(PARTIAL)


def remove(path: Path) -> None:
    """Remove a file, link or folder if it is there (a link, not what it points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic(path: Path, *, unique: bool = False) -> Iterator[Path]:
    """Yield the temporary name to write ``path`` under; when the block ends without error,
    rename it into place (a folder replaces the folder there). After an error, or a kill,
    what was written stays under the hidden temporary name, never under ``path``; the next
    write of ``path`` replaces it."""
    tmp = partial_name(path, unique=unique)
    remove(tmp)
    yield tmp
    if path.exists() and (tmp.is_dir() or path.is_dir()):
        remove(path)  # a folder replaces a folder (or what was left in its place)
    tmp.replace(path)


def check_writable(folder: Path, name: str = "out") -> None:
    """One line when the folder ``folder`` could not be made and written (nothing is made):
    its nearest existing ancestor must be a folder where a file can be written."""
    import tempfile

    from scurate.errors import InputError

    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        msg = f"{name}='{folder}': '{ancestor}' is a file, so no folder can be made under it"
        raise InputError(msg)
    try:
        tempfile.TemporaryDirectory(dir=ancestor, prefix=".scurate-write-check.").cleanup()
    except OSError as exc:
        msg = f"{name}='{folder}': cannot write in '{ancestor}' ({exc.strerror or exc})"
        raise InputError(msg) from exc


def write_text(text: str, path: Path) -> None:
    with atomic(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(data: Any, path: Path) -> None:
    """Indented JSON; values JSON cannot hold are written as their text."""
    write_text(json.dumps(data, indent=2, default=str) + "\n", path)

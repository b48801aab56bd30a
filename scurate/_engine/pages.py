"""report.html beside a run's manifest: rendered by :mod:`scurate._report` from the finished
folder's manifest.parquet and report.json.

The page is a view of the record, not part of it: it is written after report.json, is not among
the files report.json's ``written`` vouches for, and ``scurate report OUT/`` rebuilds it at any
time from the folder (a run stopped between the two leaves a complete run without a page).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scurate._data import atomic, spill
from scurate._data.manifest import collect_lean, scan_manifest
from scurate._engine.outputs import check_complete
from scurate._report.page import PAGE, PAGE_COLUMNS, render
from scurate.errors import InputError


def stored_embedding(report: Mapping[str, Any], n: int) -> tuple[NDArray[np.float32] | None, str]:
    """The run's embedding from its work-directory entry (memory-mapped), or None and why."""
    entry = (report.get("work_dir") or {}).get("entry")
    if not entry:
        return None, (
            "No embedding: this folder holds none and the run kept no work-directory entry "
            "(the CLI keeps one in scurate-work beside the output folder, the Python API with "
            "work_dir=); pass embedding= to render_report."
        )
    path = Path(entry) / "embedding.npy"
    try:
        values = spill.track(np.load(path, mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError):
        return None, f"No embedding: the run's work-directory entry {path} is gone."
    if values.ndim != 2 or values.shape[0] != n:
        return None, f"No embedding: {path} does not match the manifest's {n:,} cells."
    return values, ""


def render_report(folder: str | os.PathLike[str], embedding: NDArray[Any] | None = None) -> str:
    """The HTML of report.html for the finished run in ``folder`` (manifest.parquet and
    report.json). ``embedding``: an (n, d) array in manifest order for the 2-D map and the
    embedding-based columns of the "adds" table (unless report.json holds the table under
    ``adds``); without it, the run's work-directory entry is used where it still exists."""
    path = Path(folder)
    report = check_complete(path)
    if not (path / "manifest.parquet").is_file():
        msg = f"{path}: no manifest.parquet, so this is not a finished select or score run"
        raise InputError(msg)
    scan = scan_manifest(path / "manifest.parquet")
    stored = report.get("adds")
    if isinstance(stored, list) and stored:  # the page's own columns are enough
        columns = scan.collect_schema()
        scan = scan.select([c for c in PAGE_COLUMNS if c in columns])
    manifest = collect_lean(scan)
    why = ""
    if embedding is None:
        embedding, why = stored_embedding(report, manifest.height)
    return render(manifest, report, embedding, where=path, why=why)


def write_report(folder: str | os.PathLike[str], embedding: NDArray[Any] | None = None) -> Path:
    """Render and write ``folder``/report.html atomically; returns its path."""
    target = Path(folder) / PAGE
    atomic.write_text(render_report(folder, embedding), target)
    return target

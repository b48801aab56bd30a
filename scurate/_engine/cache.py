"""The work directory: a scored pool stored under a key made from everything it depends on, so a
second ``select`` of the same sources with another budget, policy or strata costs little more
than the policy.

The key hashes: the cache format and scurate's version; each source's resolved path, size and
modification time; the options that shape the pool (embedding, seed, duplicates, neighbour
index, the reference's files); the installed plugins' versions and the ontology release.
Anything else changed, the key changes and the pool is computed again. The metadata map (its
file's identity) and ``--set`` are kept in the entry's meta instead: where they differ, the obs
are harmonized again and the stored scores reused (``scurate._engine.stages``).

An entry is a folder ``pool-<key>`` holding the pool's manifest, its embedding
(``embedding.npy``), one ``.npy`` per score array under ``arrays/`` and ``meta.json``. Arrays
are written a block at a time and read back memory-mapped where they are large (the embedding,
the neighbour graph: :mod:`scurate._data.spill` gives their pages back as they are read), so
neither storing nor reusing a ten-million-cell pool holds them whole. It is written under
a hidden temporary name and renamed, so a run killed while writing leaves nothing that is read
as complete. An entry that cannot be read is computed again, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._data import atomic, spill
from scurate._data.manifest import collect_lean

log = logging.getLogger(__name__)

# bump when what a pool holds changes within a version (3: the neighbour graph; 4: arrays/*.npy)
FORMAT = 4
ENTRY = "pool-"


def file_identity(path: Path) -> list[Any]:
    """What identifies a file's content cheaply: its resolved path, size and mtime."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def tree_identity(paths: Iterable[Path]) -> list[Any]:
    """:func:`file_identity` of every file under each path (a folder: its files, sorted)."""
    out: list[Any] = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        out.extend(file_identity(f) for f in files if f.exists())
    return out


def make_key(parts: Mapping[str, Any]) -> str:
    """A short hex key of ``parts`` (JSON with sorted keys)."""
    text = json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class WorkDir:
    """Scored pools stored in ``folder`` by key."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def entry(self, key: str) -> Path:
        return self.folder / f"{ENTRY}{key}"

    def load(self, key: str) -> dict[str, Any] | None:
        """The stored parts of ``key`` (manifest, embedding, arrays, meta), or None."""
        entry = self.entry(key)
        if not (entry / "meta.json").is_file():
            return None
        try:
            meta = json.loads((entry / "meta.json").read_text())
            arrays = {p.stem: _read(p) for p in sorted((entry / "arrays").glob("*.npy"))}
            if "exact_dup_of" not in arrays:
                raise KeyError("arrays/exact_dup_of.npy")
            return {
                "meta": meta,
                "manifest": collect_lean(pl.scan_parquet(entry / "manifest.parquet")),
                "embedding": _read(entry / "embedding.npy", mapped=True),
                "arrays": arrays,
            }
        except (OSError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
            log.warning("work dir entry %s unreadable (%s); computing it again", entry, exc)
            return None

    def save(
        self,
        key: str,
        *,
        manifest: pl.DataFrame,
        embedding: NDArray[np.float32],
        arrays: Mapping[str, NDArray[Any]],
        meta: Mapping[str, Any],
    ) -> Path | None:
        """Store a scored pool under ``key``; a folder that cannot be written is a warning."""
        entry = self.entry(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic.atomic(entry, unique=True) as tmp:
                tmp.mkdir()
                manifest.write_parquet(tmp / "manifest.parquet")
                spill.save_npy(embedding, tmp / "embedding.npy")
                (tmp / "arrays").mkdir()
                for name, values in arrays.items():
                    spill.save_npy(values, tmp / "arrays" / f"{name}.npy")
                atomic.write_json(dict(meta), tmp / "meta.json")  # last: the entry is complete
        except OSError as exc:
            log.warning("cannot store the scored pool in %s (%s)", self.folder, exc)
            return None
        return entry

    def entries(self) -> Sequence[Path]:
        """The complete entries (a half-written one has a hidden temporary name)."""
        return sorted(self.folder.glob(f"{ENTRY}*")) if self.folder.is_dir() else []

    def describe(self) -> list[dict[str, Any]]:
        """Each entry: its name, bytes, when it was written, and its pool's sources."""
        out = []
        for entry in self.entries():
            try:
                meta = json.loads((entry / "meta.json").read_text())
            except (OSError, ValueError):
                meta = {}
            out.append(
                {
                    "entry": entry.name,
                    "bytes": _size(entry),
                    "modified": entry.stat().st_mtime,
                    "n_cells": meta.get("n_cells"),
                    "sources": meta.get("sources", []),
                }
            )
        return out

    def clear(self) -> tuple[int, int]:
        """Remove every entry and half-written entry (nothing else); (entries, bytes) freed."""
        doomed = [*self.entries()]
        if self.folder.is_dir():
            doomed += [p for p in self.folder.glob(f".{ENTRY}*") if atomic.is_partial(p)]
        freed = sum(_size(p) for p in doomed)
        for path in doomed:
            atomic.remove(path)
        return len(doomed), freed


def _read(path: Path, *, mapped: bool = False) -> NDArray[Any]:
    """A stored array: mapped where it is ``mapped`` or large, else read into memory (the small
    per-cell columns, which later stages may write to)."""
    values: NDArray[Any] = np.load(path, mmap_mode="r", allow_pickle=False)
    if mapped or values.nbytes >= spill.SPILL_BYTES:
        return spill.track(values)
    return np.array(values)


def _size(path: Path) -> int:
    files = path.rglob("*") if path.is_dir() else [path]
    return sum(f.stat().st_size for f in files if f.is_file())

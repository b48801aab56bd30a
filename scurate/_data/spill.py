"""Per-cell arrays too large to hold in memory: written to a temporary file, memory-mapped, and
read in blocks whose pages are given back after each block.

At ten million cells a 50-d float32 embedding is 2 GB, the neighbour lists scoring keeps for the
policies 1.9 GB, and FAISS's inverted lists hold another copy of the embedding while it searches;
held together they were most of an 11 GB peak. An array of at least :data:`SPILL_BYTES` is
therefore built in a file (:class:`Builder`: rows are written as they are computed, so the whole
array never sits in the process's memory) and read through a read-only map. Pages of a map that
a stage has read count in the process's resident memory until they are dropped; :func:`release`
drops them (they stay in the kernel's page cache, so reading them again is cheap), and
:func:`blocks` walks an array in row blocks, dropping each block's pages when the next is read.
:func:`scurate._heap.trim` releases every live map at each stage's end.

The file lives in the system's temporary folder (``TMPDIR``, as :mod:`tempfile` finds it; set it
where there is room for the embedding and the lists: about 600 bytes a cell at 50 dimensions)
and is unlinked as soon as it is made: only the open descriptor and then the map keep it, so a
run that is killed leaves nothing behind. Smaller arrays stay in memory, so small runs and tests
never touch the disk unless a test lowers :data:`SPILL_BYTES`.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from scurate.errors import InputError

SPILL_BYTES = 256 << 20  # arrays at least this large are built on disk
BLOCK_ROWS = 65_536  # rows read at a time by blocks()
TAKE_ROWS = 4_096  # rows gathered at a time by take()

_MAPS: list[weakref.ref[mmap.mmap]] = []  # every live map made here


def _mapped(values: Any) -> np.memmap[Any, Any] | None:
    """The memory map ``values`` is (a view of), or None."""
    while values is not None and not isinstance(values, np.memmap):
        values = getattr(values, "base", None)
    return values


def spilled(values: Any) -> bool:
    """Whether ``values`` is (a view of) an array mapped from disk."""
    return _mapped(values) is not None


class Builder:
    """An array of ``shape`` and ``dtype`` filled by row blocks (:meth:`put`), in a temporary
    file when it is at least :data:`SPILL_BYTES` (or ``spill`` says so), else in memory;
    :meth:`done` returns it (read-only when on disk)."""

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: DTypeLike,
        *,
        fill: Any = None,
        spill: bool | None = None,
    ) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.on_disk = nbytes >= SPILL_BYTES if spill is None else spill
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._array: NDArray[Any] | None = None
        self._fd = -1
        if not self.on_disk:
            self._array = np.empty(self.shape, dtype=self.dtype)
            if fill is not None:
                self._array.fill(fill)
            return
        folder = tempfile.gettempdir()
        try:
            self._fd, path = tempfile.mkstemp(prefix="scurate-", suffix=".bin", dir=folder)
            os.unlink(path)  # the descriptor keeps the file; nothing is left if the run dies
            os.ftruncate(self._fd, nbytes)
        except OSError as exc:
            self.close()
            msg = (
                f"{folder}: cannot make a {nbytes / 1e9:.1f} GB temporary file ({exc.strerror});"
                " set TMPDIR to a folder with room"
            )
            raise InputError(msg) from exc

    def put(self, start: int, block: NDArray[Any]) -> None:
        """Rows ``start ... start + len(block) - 1``."""
        if self._array is not None:
            self._array[start : start + len(block)] = block
            return
        data = np.ascontiguousarray(block, dtype=self.dtype)
        view = data.data.cast("B")
        offset = start * self._row_bytes
        while len(view):  # pwrite may write less than asked
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    def done(self) -> NDArray[Any]:
        """The filled array (rows never put hold ``fill`` in memory and zeros on disk)."""
        if self._array is not None:
            out, self._array = self._array, None
            return out
        try:
            with os.fdopen(os.dup(self._fd), "rb") as file:
                mapped: np.memmap[Any, Any] = np.memmap(
                    file, dtype=self.dtype, mode="r", shape=self.shape
                )
        finally:
            self.close()
        handle = getattr(mapped, "_mmap", None)
        if handle is not None:
            _MAPS.append(weakref.ref(handle))
        return mapped

    def close(self) -> None:
        """Let go of the file (a map made of it lives on until it is dropped)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def to_disk(values: NDArray[Any], *, spill: bool | None = None) -> NDArray[Any]:
    """``values`` mapped from a temporary file where :class:`Builder` would put it on disk;
    else ``values`` itself."""
    if spilled(values):
        return values
    builder = Builder(values.shape, values.dtype, spill=spill)
    if not builder.on_disk:
        return values
    for start in range(0, len(values), BLOCK_ROWS):
        builder.put(start, values[start : start + BLOCK_ROWS])
    return builder.done()


def track(values: NDArray[Any]) -> NDArray[Any]:
    """``values`` (an array mapped from a file elsewhere, e.g. ``np.load(..., mmap_mode="r")``)
    with its map's pages released by :func:`release` like the maps made here."""
    mapped = _mapped(values)
    handle = getattr(mapped, "_mmap", None)
    if handle is not None:
        _MAPS.append(weakref.ref(handle))
    return values if mapped is None else mapped


def save_npy(values: NDArray[Any], path: str | os.PathLike[str]) -> None:
    """Write ``values`` to ``path`` as a ``.npy`` file a block at a time (``np.save`` reads a
    mapped array whole, so every page of it would be resident at once)."""
    header = {
        "descr": np.lib.format.dtype_to_descr(values.dtype),
        "fortran_order": False,
        "shape": values.shape,
    }
    with open(path, "wb") as file:
        np.lib.format.write_array_header_2_0(file, header)
        for _, block in blocks(values):
            file.write(np.ascontiguousarray(block).data)


def release() -> None:
    """Drop the resident pages of every live map (read again from the page cache when
    needed)."""
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:
        return
    live = [ref for ref in _MAPS if ref() is not None]
    _MAPS[:] = live
    for ref in live:
        handle = ref()
        if handle is not None and not handle.closed:
            handle.madvise(advice)


def blocks(values: NDArray[Any], rows: int = BLOCK_ROWS) -> Iterator[tuple[int, NDArray[Any]]]:
    """``(start, values[start:start + rows])`` over the whole array; where it is mapped from
    disk, each block's pages are dropped when the next block is read."""
    on_disk = spilled(values)
    for start in range(0, len(values), rows):
        yield start, values[start : start + rows]
        if on_disk:
            release()


def take(values: NDArray[Any], rows: NDArray[np.integer[Any]]) -> NDArray[Any]:
    """``values[rows]`` as one C-contiguous array in memory, gathered block by block where
    ``values`` is mapped from disk, in increasing row order (so the map's pages come and go a
    block at a time: a fault maps the pages around the one read, so rows spread over the whole
    map would otherwise bring most of it in at once)."""
    if not spilled(values):
        return np.ascontiguousarray(values[rows])
    rows = np.asarray(rows)
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), *values.shape[1:]), dtype=values.dtype)
    for start in range(0, len(rows), TAKE_ROWS):
        at = order[start : start + TAKE_ROWS]
        out[at] = values[rows[at]]
        release()
    return out

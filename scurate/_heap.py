"""Giving freed memory back to the system between stages.

A stage frees its temporaries when it ends, but glibc's allocator keeps much of what it freed
in its heaps for reuse (allocations under its mmap threshold, which glibc raises as large
blocks come and go, and every string and small array of a million-row obs). The process then
holds that memory as resident: on 200,000 cells of counts, the scored pool held 0.81 GB of
which 0.33 GB was freed memory still in the heap, and each later stage's peak stacked on it.
:func:`trim` collects reference cycles (arrays a cycle holds live until Python's rare full
collection) and asks glibc to return the free memory (``malloc_trim``); at a stage's end this
costs well under a second at a million cells. It also drops the resident pages of the arrays
mapped from disk (:func:`scurate._data.spill.release`), which a stage may have read whole.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
from typing import Any

from scurate._data import spill


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None  # musl has none
    except OSError:
        return None


_LIBC = _libc()

# glibc maps a block of at least its mmap threshold on its own and unmaps it when freed, but
# it raises the threshold (up to 32 MB) each time it frees such a block: after a scoring stage
# the per-file and per-block arrays under 32 MB come from the heap, and freed they stay there,
# between live chunks that malloc_trim cannot give back. Fixing the threshold keeps them mapped
# (M_MMAP_THRESHOLD, which also stops the raising), unless the user set MALLOC_MMAP_THRESHOLD_.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20


def _fix_mmap_threshold() -> None:
    if _LIBC is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


_fix_mmap_threshold()


def trim() -> None:
    """Collect what only reference cycles still hold, drop the pages of maps from disk, then
    return the C heap's free memory to the system (glibc; elsewhere only the collection)."""
    gc.collect()
    spill.release()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)

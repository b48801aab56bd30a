"""How many threads a job uses, set in one place: OpenMP (scurate's native core and FAISS each
bring one) and BLAS (numpy's and scipy's OpenBLAS), through threadpoolctl.

The default is the cores this process may use (its CPU affinity, as ``taskset`` or a cluster's
cgroup sets it), never more: threads that outnumber the cores, or that spin while they wait,
make a job on a shared machine slow down far more than the CPU it loses. OpenMP's threads also
wait passively (``scurate/_env.py``). Inside the bench proxies, whose matrices are small, BLAS
runs on one thread: OpenBLAS threads spin-wait, and on a busy machine two of them made a bench
15x slower for the same results.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

from scurate.errors import OptionError


def available_cores() -> int:
    """The cores this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def check_threads(threads: int | None) -> None:
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        msg = f"threads={threads!r}: must be a whole number >= 1"
        raise OptionError(msg)


@contextmanager
def limited(threads: int | None) -> Iterator[int]:
    """Run the block with at most ``threads`` OpenMP and BLAS threads (default: the cores
    this process may use); yields the number used."""
    n = available_cores() if threads is None else threads
    with threadpool_limits(limits=n):
        yield n


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with BLAS on one thread (small matrices: threads only wait)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield

"""Freed blocks go back to the system: scurate fixes glibc's mmap threshold, which glibc would
otherwise raise (up to 32 MB) after freeing a large block, leaving later blocks under it in the
heap when they are freed. Run in a fresh process each, since the setting is process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc's allocator",
)

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import scurate  # noqa: F401

    def anon_mb():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("RssAnon")) / 1024

    x = np.ones(30 << 20, np.uint8)  # a 30 MB block mapped and freed: glibc raises its threshold
    del x
    blocks, pins = [], []
    for _ in range(50):
        blocks.append(np.ones(4 << 20, np.uint8))
        pins.append(bytes(range(256)) * 8)  # a small live chunk after each block
    held = anon_mb()
    del blocks
    print(round(held - anon_mb()))
    """
)


def returned_mb(env: dict[str, str], cwd: Path) -> int:
    # run outside the source tree: `python -c` puts the working folder first on sys.path, and
    # the checkout's scurate/ has no built native module
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def test_freed_blocks_are_given_back_and_a_users_threshold_is_kept(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    assert returned_mb(env, tmp_path) >= 180  # of 200 MB freed
    # the user's own threshold (here glibc's ceiling, 32 MB) is left alone: the blocks come
    # from the heap, and the live chunks between them keep it from shrinking
    assert returned_mb({**env, "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}, tmp_path) <= 20

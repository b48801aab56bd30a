"""Ctrl-C stops a long native kernel: it raises KeyboardInterrupt instead of running on.

The two traversals are the kernels that run long (facility location and the grid covering poll
the same way, but no input of a test's size keeps them busy long enough to test). Each gets a
job that would take minutes; a child process starts it, the test sends SIGINT once the kernel
has had time to start, and checks the outcome: the child died of KeyboardInterrupt and never
printed that the kernel finished. The wait is bounded only so that a broken build cannot hang
the suite."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scurate import _core

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SETUP = """
import numpy as np
from scurate import _core
rng = np.random.default_rng(0)
"""

# minutes of work each, uninterrupted
JOBS = {
    "kcenter": """
x = rng.normal(size=(200_000, 64)).astype(np.float32)
run = lambda: _core.kcenter(x, 200_000)
""",
    "kcenter_covered": """
x = rng.normal(size=(100_000, 32)).astype(np.float32)
covered = np.full(100_000, np.inf, dtype=np.float32)
run = lambda: _core.kcenter_covered(x, covered, 100_000)
""",
}

RUN = """
print("started", flush=True)
run()
print("finished", flush=True)
"""


@pytest.mark.parametrize("kernel", sorted(JOBS))
def test_sigint_stops_the_kernel(kernel: str, tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SETUP + JOBS[kernel] + RUN],
        cwd=tmp_path,  # not the source tree, whose scurate/ has no _core
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            started = child.stdout.readline().strip()
            if started == "started":
                time.sleep(1.0)  # into the kernel (a signal before it is raised all the same)
                child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=300)
        finally:
            if child.poll() is None:
                child.kill()
    assert started == "started", err
    assert "finished" not in out
    assert err.rstrip().endswith("KeyboardInterrupt"), err
    assert child.returncode in (-signal.SIGINT, 1, 130)


def test_kernels_off_the_main_thread_run_as_on_it() -> None:
    """Off the main thread there are no signal handlers to run, and nothing is polled."""
    x = np.random.default_rng(1).normal(size=(3000, 12)).astype(np.float32)
    results: list[tuple[np.ndarray, np.ndarray]] = []
    worker = threading.Thread(target=lambda: results.append(_core.kcenter(x, 300)))
    worker.start()
    worker.join()
    here = _core.kcenter(x, 300)
    np.testing.assert_array_equal(results[0][0], here[0])
    np.testing.assert_array_equal(results[0][1], here[1])

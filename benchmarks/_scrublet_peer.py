"""The Scrublet side of ``bench_doublets.py``, run by the peer Python (``--peer-python``).

It needs only numpy, scipy and the standalone ``scrublet`` package (not scurate, not anndata):
``python _scrublet_peer.py JOBS.json`` reads each unit's raw counts (``scipy.sparse.save_npz``,
cells x genes), runs ``scrublet.Scrublet(counts, random_state=SEED).scrub_doublets()`` with
Scrublet's own defaults (expected doublet rate 0.06, 2 simulated doublets per cell, 30 PCs,
``n_neighbors`` = 0.5 sqrt(cells), its automatic threshold) ``repeats`` times, and writes each
unit's scores (``<unit>.scores.npy``) and a ``result.json`` beside JOBS.json: the threshold
(null where Scrublet found none), the median wall time and the versions.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def run_unit(
    counts: sp.csr_matrix, seed: int, repeats: int
) -> tuple[np.ndarray, float | None, list[float]]:
    import scrublet

    times: list[float] = []
    scores = np.zeros(0)
    threshold: float | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        scrub = scrublet.Scrublet(counts, random_state=seed)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints even with verbose=False
            scores, predicted = scrub.scrub_doublets(verbose=False)
        times.append(time.perf_counter() - start)
        threshold = None if predicted is None else float(scrub.threshold_)
    return np.asarray(scores, dtype=np.float64), threshold, times


def main(jobs_path: str) -> int:
    jobs = json.loads(Path(jobs_path).read_text())
    folder = Path(jobs_path).parent
    start = time.perf_counter()
    import scrublet  # noqa: F401 - its import (umap, numba) is timed apart

    import_s = time.perf_counter() - start
    units = {}
    for unit in jobs["units"]:
        counts = sp.load_npz(folder / unit["counts"]).tocsr().astype(np.float32)
        scores, threshold, times = run_unit(counts, jobs["seed"], jobs["repeats"])
        np.save(folder / f"{unit['name']}.scores.npy", scores)
        units[unit["name"]] = {
            "n_cells": int(counts.shape[0]),
            "threshold": threshold,
            "seconds": statistics.median(times),
            "all_seconds": times,
        }
    result = {
        "units": units,
        "import_s": import_s,
        "versions": {p: version(p) for p in ("scrublet", "numpy", "scipy", "scikit-learn")},
        "python": sys.version.split()[0],
    }
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))

"""Same inputs, same seed, any number of OpenMP threads: the same bytes out.

Every native reduction whose result is written runs per row, or per block in a fixed order, so
nothing depends on how rows are shared among threads. These tests run the installed package in
child processes at OMP_NUM_THREADS=1 and 2 and compare: ``scurate select`` manifests byte for
byte (one run per policy that calls a native kernel), and every kernel's raw output on inputs
large enough to take its threaded paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from conftest import TYPES, make_adata, type_programs

SCURATE = Path(sys.executable).with_name("scurate")  # the installed console script
POLICIES = ("kcenter", "facility", "sketch")


def scurate_command() -> list[str]:
    if SCURATE.exists():
        return [str(SCURATE)]
    return [sys.executable, "-c", "from scurate.cli import main; main()"]


def run_with_threads(args: list[str], threads: int, cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    res = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two labs, 5,200 cells (above every kernel's threading threshold), with 200 copies of
    lab a's cells in lab b (exact duplicates, ties in the neighbour lists)."""
    root = tmp_path_factory.mktemp("determinism")
    rng = np.random.default_rng(16)
    programs = type_programs(np.random.default_rng(42), len(TYPES))
    a = make_adata(rng, programs, TYPES, [900, 700, 500, 800, 40], prefix="a_")
    b = make_adata(rng, programs, TYPES, [700, 500, 400, 460, 0], prefix="b_")
    b = ad.concat([b, a[:200]])
    paths = [root / "lab_a.h5ad", root / "lab_b.h5ad"]
    a.write_h5ad(paths[0])
    b.write_h5ad(paths[1])
    return paths


@pytest.mark.parametrize("policy", POLICIES)
def test_manifest_bytes_do_not_depend_on_threads(
    sources: list[Path], policy: str, tmp_path: Path
) -> None:
    manifests = []
    for threads in (1, 2):
        out = tmp_path / f"threads{threads}"
        args = [*scurate_command(), "select", *map(str, sources), "-b", "300"]
        run_with_threads(
            [*args, "--policy", policy, "--seed", "3", "-o", str(out)], threads, tmp_path
        )
        manifests.append((out / "manifest.parquet").read_bytes())
    assert manifests[0] == manifests[1]


KERNELS = """
import sys
import numpy as np
import scipy.sparse as sp
from scurate import _core

rng = np.random.default_rng(5)
n, d = 40_000, 24  # past kcenter's threaded sort (2 x 16,384 rows) and the other thresholds
centers = rng.normal(scale=3.0, size=(30, d))
x = (centers[rng.integers(0, 30, n)] + rng.normal(size=(n, d))).astype(np.float32)
x[1000:1500] = x[:500]  # ties
x[:, 5] = x[:, 4][::-1]  # two dimensions of exactly the same variance
out = {}
out["kc_order"], out["kc_radii"] = _core.kcenter(x, 1500, first=7)
init = np.arange(0, n, 997, dtype=np.int64)
out["kci_order"], out["kci_radii"] = _core.kcenter(x, 500, initial=init)
cov = rng.uniform(0.0, 8.0, n).astype(np.float32)
out["kcc_order"], out["kcc_radii"] = _core.kcenter_covered(x, cov, 300)
out["box"], n_boxes, unit = _core.grid_covering(x, 2000)
out["grid"] = np.array([n_boxes, unit])
counts = sp.random(n, 300, density=0.05, random_state=1, format="csr", dtype=np.float32)
counts.data = np.floor(counts.data * 20)
h, nnz, bad = _core.hash_count_rows(
    counts.indptr.astype(np.int64), counts.indices, counts.data, np.arange(300, dtype=np.int32)
)
out["hash"], out["nnz"], out["bad"] = h, nnz, np.array([bad])
d2 = np.sort(rng.uniform(0, 4, size=(n, 11)).astype(np.float32), axis=1)
labels = rng.integers(0, n, size=(n, 11)).astype(np.int64)
out["nn_row"], out["nn_dist"], out["mean"] = _core.knn_summary(d2, labels, 0, 10)
out["groups"] = _core.union_find(n, labels[:, 1] // 7, labels[:, 2] // 7)
k = 10
idx = rng.integers(0, n, size=(n, k))
vals = rng.uniform(0, 1, size=(n, k)).astype(np.float32)
indptr = np.arange(0, n * k + 1, k, dtype=np.int64)
out["fl_order"], out["fl_obj"] = _core.facility_location(indptr, idx.ravel(), vals.ravel(), 500)
np.savez(sys.argv[1], **out)
"""


def test_every_kernel_gives_the_same_bits_at_1_and_2_threads(tmp_path: Path) -> None:
    results = []
    for threads in (1, 2):
        path = tmp_path / f"threads{threads}.npz"
        run_with_threads([sys.executable, "-c", KERNELS, str(path)], threads, tmp_path)
        results.append(np.load(path))
    one, two = results
    assert one.files == two.files
    for name in one.files:
        assert one[name].tobytes() == two[name].tobytes(), name

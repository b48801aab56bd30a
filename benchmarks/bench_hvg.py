"""Benchmark scurate's variable genes against scanpy's seurat flavour on the same sample.

The sample is what the default embedder fits on: every source's counts on the shared genes,
scaled to 10,000 per cell and log1p'd by scurate (``_log_normalize``), the first
``--fit-cells`` cells in the seeded order ``fit_pca`` draws (all of Baron's 1,886 cells at the
default 20,000). On that one float32 CSR matrix it runs

- ``scurate``: :func:`scurate._compute.embed.highly_variable` (numpy);
- ``scanpy``: ``sc.pp.highly_variable_genes(AnnData(sample), flavor="seurat",
  n_top_genes=N, inplace=False)`` (its first call, which compiles numba kernels, is a warm-up
  and not timed);

in alternating rounds (``--repeats``), and prints how many genes the two pick in common, the
largest difference of the normalized dispersions where scanpy has one, and the median time of
each. scanpy is not a dependency of scurate: run this where both are installed, e.g.::

    python3.12 -m venv /tmp/hvg && /tmp/hvg/bin/pip install 'scanpy==1.12.*' .
    /tmp/hvg/bin/python benchmarks/bench_hvg.py                  # Baron mouse pancreas
    /tmp/hvg/bin/python benchmarks/bench_hvg.py ../shared/data/cellbench_lung_celllines

Never run in CI.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
from scurate._compute import embed
from scurate._data.genes import common_genes
from scurate._data.sources import open_sources

BARON = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "baron_mouse_pancreas"


def log_normalized_sample(paths: list[Path], fit_cells: int, seed: int) -> sp.csr_matrix:
    """The cells ``fit_pca`` would fit on, log-normalized by scurate, on the shared genes."""
    sources = open_sources(paths)
    space = common_genes(sources)
    sizes = np.array([s.n_obs for s in sources])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = int(offsets[-1])
    picked = np.zeros(total, dtype=bool)
    rng = np.random.default_rng(seed)
    picked[rng.choice(total, size=min(total, fit_cells), replace=False)] = True
    parts = []
    for k, source in enumerate(sources):
        counts = source.x_is_counts()
        mask = picked[offsets[k] : offsets[k + 1]]
        for start, chunk in source.iter_x():
            rows = np.flatnonzero(mask[start : start + chunk.shape[0]])
            if len(rows):
                part = chunk[rows] @ space.projections[k]
                parts.append(embed._log_normalize(part, counts=counts))
    return sp.vstack(parts).tocsr()


def scanpy_hvg(sample: sp.csr_matrix, n_top: int) -> tuple[np.ndarray, np.ndarray]:
    import scanpy as sc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = sc.pp.highly_variable_genes(
            ad.AnnData(sample), flavor="seurat", n_top_genes=n_top, inplace=False
        )
    return np.flatnonzero(df["highly_variable"].to_numpy()), df["dispersions_norm"].to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path, default=[BARON])
    parser.add_argument("--n-top", type=int, default=embed.N_TOP_GENES)
    parser.add_argument("--fit-cells", type=int, default=embed.FIT_CELLS)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sample = log_normalized_sample(args.sources, args.fit_cells, args.seed)
    print(f"sample: {sample.shape[0]} cells x {sample.shape[1]} genes, nnz {sample.nnz}")
    started = time.perf_counter()
    theirs, their_norm = scanpy_hvg(sample, args.n_top)  # warm-up: numba compiles here
    warm_up = time.perf_counter() - started

    times: dict[str, list[float]] = {"scurate": [], "scanpy": []}
    for r in range(args.repeats):
        for name in ("scurate", "scanpy") if r % 2 == 0 else ("scanpy", "scurate"):
            started = time.perf_counter()
            if name == "scurate":
                ours = embed.highly_variable(sample, args.n_top)
            else:
                theirs, their_norm = scanpy_hvg(sample, args.n_top)
            times[name].append(time.perf_counter() - started)

    norm = embed.normalized_dispersion(sample)
    both = ~np.isnan(their_norm)
    same_nan = bool(np.array_equal(np.isnan(norm), np.isnan(their_norm)))
    print(
        f"genes picked: scurate {len(ours)}, scanpy {len(theirs)}, in common "
        f"{len(np.intersect1d(ours, theirs))} of {args.n_top}"
    )
    largest = np.max(np.abs(norm[both] - their_norm[both]))
    print(
        f"normalized dispersion: max |difference| {largest:.3g} over {int(both.sum())} genes;"
        f" NaN in the same genes: {same_nan}"
    )
    for name, ts in times.items():
        print(f"{name:8s} median {statistics.median(ts) * 1e3:8.1f} ms over {len(ts)} runs")
    print(f"scanpy first call (numba compile) {warm_up:.2f} s")
    print(
        f"scanpy {version('scanpy')}, pandas {version('pandas')}, numpy {np.__version__}, "
        f"python {platform.python_version()}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()

"""Benchmark exact-duplicate hashing against what a user would write, and the read floor.

One h5ad of Poisson counts (default 100,000 cells x 20,000 genes, CSR float32, about 1.2 GB,
gene means drawn from a gamma so that ~7.5 % of entries are nonzero) with ``--copies`` cells
copied to other rows. Every method reads X the same way (``H5adSource.iter_x``, chunks of
8,192 rows), so the differences are what each does with a chunk:

- ``read floor``: read every chunk and do nothing with it (in 8,192-row chunks and in the
  512-row chunks scurate hashes in; the faster of the two is the floor);
- ``scurate``: :func:`scurate._compute.dedup.find_exact_duplicates` (native hashing of every
  row, then the candidate rows read again and compared), the whole job;
- ``numpy row bytes``: a Python loop hashing each row's (indices, data) bytes into a dict,
  what a user writes first;
- ``numpy vectorized``: one mixed 64-bit word per (gene, count) pair with numpy integer ops,
  summed per row with ``np.add.reduceat``: the best numpy we found;
- ``scipy projection``: ``chunk @ R`` with a (genes x 4) Gaussian matrix; equal projections
  are candidates (what random-projection dedup does).

The methods run in turns (``--repeats`` rounds, order rotating) on a warm page cache, and the
table gives each one's median time and its ratio to the read floor measured in the same run,
with the planted copies each one found.

Usage::

    python benchmarks/bench_dedup.py                       # 100k x 20k
    python benchmarks/bench_dedup.py --cells 20000 --genes 5000 --repeats 3

Never run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scurate import _core
from scurate._compute.dedup import find_exact_duplicates
from scurate._data.anndata_store import H5adSource
from scurate._data.sources import open_sources


def write_counts(path: Path, n: int, genes: int, copies: int, seed: int) -> NDArray[np.int64]:
    """Write the matrix; return, for each copy row, the row it copies (-1 elsewhere)."""
    rng = np.random.default_rng(seed)
    means = rng.gamma(0.25, 0.31, size=genes)  # P(x > 0) averages about 7.5 %
    parts = []
    for start in range(0, n, 2000):
        rows = min(2000, n - start)
        parts.append(sp.csr_matrix(rng.poisson(means, size=(rows, genes)).astype(np.float32)))
    x = sp.vstack(parts).tocsr()
    source_of = np.full(n, -1, dtype=np.int64)
    targets = rng.choice(n, size=2 * copies, replace=False)
    src, dst = targets[:copies], targets[copies:]
    order = np.arange(n)
    order[dst] = src  # row dst of the new matrix is row src of the old one
    x = x[order]
    source_of[dst] = src
    adata = ad.AnnData(x)
    adata.var_names = [f"ENSG{i:011d}" for i in range(genes)]
    adata.obs_names = [f"c{i}" for i in range(n)]
    adata.write_h5ad(path)
    return source_of


def read_floor(source: H5adSource, chunk_rows: int = 8192) -> int:
    rows = 0
    for _, chunk in source.iter_x(chunk_rows=chunk_rows):
        rows += chunk.shape[0]
    return rows


def numpy_row_bytes(source: H5adSource) -> dict[int, list[int]]:
    buckets: dict[int, list[int]] = defaultdict(list)
    for start, chunk in source.iter_x():
        ptr, idx, val = chunk.indptr, chunk.indices, chunk.data
        for i in range(chunk.shape[0]):
            lo, hi = ptr[i], ptr[i + 1]
            buckets[hash((idx[lo:hi].tobytes(), val[lo:hi].tobytes()))].append(start + i)
    return buckets


def numpy_vectorized(source: H5adSource) -> NDArray[np.uint64]:
    out = np.empty(source.n_obs, dtype=np.uint64)
    k1, k2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)
    for start, chunk in source.iter_x():
        z = chunk.indices.astype(np.uint64) * k1 + chunk.data.astype(np.uint64)
        z ^= z >> np.uint64(31)
        z *= k2
        z ^= z >> np.uint64(29)
        nonempty = np.diff(chunk.indptr) > 0
        sums = np.zeros(chunk.shape[0], dtype=np.uint64)
        if nonempty.any():
            sums[nonempty] = np.add.reduceat(z, chunk.indptr[:-1][nonempty])
        out[start : start + chunk.shape[0]] = sums
    return out


def scipy_projection(source: H5adSource, seed: int = 0) -> NDArray[np.float64]:
    r = np.random.default_rng(seed).normal(size=(source.n_vars, 4))
    out = np.empty((source.n_obs, 4))
    for start, chunk in source.iter_x():
        out[start : start + chunk.shape[0]] = chunk @ r
    return out


def pairs_found(keys: NDArray[np.generic], source_of: NDArray[np.int64]) -> int:
    """Planted copies whose key equals their original's."""
    dst = np.flatnonzero(source_of >= 0)
    if keys.ndim == 2:
        return int(np.all(keys[dst] == keys[source_of[dst]], axis=1).sum())
    return int((keys[dst] == keys[source_of[dst]]).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--copies", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/scurate-bench"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    args.data_dir.mkdir(parents=True, exist_ok=True)
    path = args.data_dir / f"counts_{args.cells}x{args.genes}_{args.copies}_s{args.seed}.h5ad"
    truth = path.with_suffix(".npy")
    if not path.exists() or not truth.exists():
        start = time.perf_counter()
        np.save(truth, write_counts(path, args.cells, args.genes, args.copies, args.seed))
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    source_of = np.load(truth)
    source = H5adSource(path, "counts")
    size_gb = path.stat().st_size / 1e9

    found: dict[str, int] = {}

    def run_scurate() -> None:
        result = find_exact_duplicates(open_sources([path]))
        dst = np.flatnonzero(source_of >= 0)
        kept = np.minimum(dst, source_of[dst])
        copy = np.maximum(dst, source_of[dst])
        found["scurate"] = int((result.dup_of[copy] == kept).sum())
        found["scurate false pairs"] = int((result.dup_of >= 0).sum()) - found["scurate"]

    def run_row_bytes() -> None:
        buckets = numpy_row_bytes(source)
        key = np.empty(source.n_obs, dtype=np.int64)
        for h, rows in buckets.items():
            key[rows] = h
        found["numpy row bytes"] = pairs_found(key, source_of)

    def run_vectorized() -> None:
        found["numpy vectorized"] = pairs_found(numpy_vectorized(source), source_of)

    def run_projection() -> None:
        found["scipy projection"] = pairs_found(scipy_projection(source), source_of)

    methods: dict[str, Callable[[], object]] = {
        "read floor": lambda: read_floor(source),
        "read floor (512-row chunks)": lambda: read_floor(source, 512),
        "scurate": run_scurate,
        "numpy row bytes": run_row_bytes,
        "numpy vectorized": run_vectorized,
        "scipy projection": run_projection,
    }
    read_floor(source)  # warm the page cache
    times: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            methods[name]()
            times[name].append(time.perf_counter() - start)
        print(f"round {r + 1}/{args.repeats} done", file=sys.stderr)

    # the floor is the faster of the two ways of merely reading X
    floor = min(
        statistics.median(times["read floor"]),
        statistics.median(times["read floor (512-row chunks)"]),
    )
    print(
        f"\n{args.cells:,} cells x {args.genes:,} genes, CSR float32, {size_gb:.2f} GB, "
        f"{args.copies:,} planted copies; {args.repeats} rounds; "
        f"{os.cpu_count()} cores, {_core.max_threads()} OpenMP threads, {platform.processor()}"
    )
    print("\n| method | median s | x read floor | copies found |\n|---|---:|---:|---:|")
    rows = []
    for name in names:
        med = statistics.median(times[name])
        got = "" if name.startswith("read floor") else f"{found.get(name, 0):,} / {args.copies:,}"
        print(f"| {name} | {med:.2f} | {med / floor:.2f} | {got} |")
        rows.append({"method": name, "median_s": med, "ratio": med / floor, "times": times[name]})
    print(f"\nscurate false pairs: {found.get('scurate false pairs', 0)}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "found": found}, indent=2))


if __name__ == "__main__":
    main()

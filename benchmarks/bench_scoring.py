"""Benchmark near-duplicate, density and novelty scoring against the FAISS search alone.

A seeded PCA-like embedding (:func:`_data.pca_like`, default 1,000,000 cells x 50 dims) with
``--pairs`` planted near duplicates (a cell copied with noise at 5 % of the median
nearest-neighbour distance), and a reference corpus of ``--reference`` other cells from the
same cell types, indexed beforehand (``scurate index build`` does that once; not timed).

- ``faiss alone``: what the scores cannot do without: build the pool's index with the same
  factory string and training rows as scurate, search every cell's k + 1 nearest neighbours
  in the same chunks, and search each cell's nearest reference cell;
- ``scurate``: :func:`scurate._compute.scoring.neighbour_scores` (the same index and search,
  plus the eps estimate, the native kNN summaries, edge extraction and union-find) and the
  novelty search of :meth:`scurate._compute.reference.Reference.nearest`.

FAISS is imported after scurate, so both OpenMP runtimes wait passively (see
``scurate/_env.py``). They run in turns over ``--repeats`` rounds; the table gives medians
and the ratio of scurate to FAISS alone measured in the same run, and the recall of the
planted pairs (both cells in one near-duplicate group).

Usage::

    python benchmarks/bench_scoring.py                    # 1M x 50
    python benchmarks/bench_scoring.py --cells 100000 --repeats 3

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
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scurate import _core
from scurate._compute.faiss_index import SEARCH_CHUNK, build_index, default_factory
from scurate._compute.reference import Reference
from scurate._compute.scoring import K_NEIGHBOURS, neighbour_scores

from _data import pca_like


def planted(
    n: int, pairs: int, seed: int
) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    x, _ = pca_like(rng, n)
    originals = rng.choice(n, size=2 * pairs, replace=False)
    src, dst = originals[:pairs], originals[pairs:]
    import faiss  # after scurate: its OpenMP runtime then waits passively too (scurate._env)

    # the median nearest-neighbour distance, on a sample
    sample = x[rng.choice(n, 2000, replace=False)]
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    d2, _ = index.search(sample, 2)
    median_nn = float(np.median(np.sqrt(d2[:, 1])))
    noise = rng.normal(size=(pairs, x.shape[1])).astype(np.float32)
    noise *= 0.05 * median_nn / np.linalg.norm(noise, axis=1, keepdims=True)
    x[dst] = x[src] + noise
    return np.ascontiguousarray(x), src, dst


def faiss_alone(x: NDArray[np.float32], reference: Any, factory: str) -> None:
    index, _ = build_index(x, factory=factory)
    for start in range(0, len(x), SEARCH_CHUNK):
        index.search(x[start : start + SEARCH_CHUNK], K_NEIGHBOURS + 1)
    for start in range(0, len(x), SEARCH_CHUNK):
        reference.search(x[start : start + SEARCH_CHUNK], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=5_000)
    parser.add_argument("--reference", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    x, src, dst = planted(args.cells, args.pairs, args.seed)
    ref_x, _ = pca_like(np.random.default_rng(args.seed + 1), args.reference)
    ref_index, _ = build_index(ref_x)
    reference = Reference(
        ref_index,
        np.array([f"ref/{i}" for i in range(args.reference)], dtype=object),
        np.full(args.reference, "ref", dtype=object),
        x.shape[1],
        None,
        "X_emb",
    )
    factory = default_factory(len(x), x.shape[1])
    recall: list[float] = []
    times: dict[str, list[float]] = {"faiss alone": [], "scurate": []}

    def run_scurate() -> None:
        scores = neighbour_scores(x, index_factory=factory)
        reference.nearest(x)
        group = scores.near_dup_group
        recall.append(float(((group[src] >= 0) & (group[src] == group[dst])).mean()))

    runs = {"faiss alone": lambda: faiss_alone(x, ref_index, factory), "scurate": run_scurate}
    names = list(runs)
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
            print(f"round {r + 1}: {name} {times[name][-1]:.1f} s", file=sys.stderr)

    import faiss

    alone = statistics.median(times["faiss alone"])
    ours = statistics.median(times["scurate"])
    print(
        f"\n{args.cells:,} cells x {x.shape[1]} dims, {args.pairs:,} planted near-duplicate "
        f"pairs, reference of {args.reference:,} cells; index {factory}, k = {K_NEIGHBOURS}; "
        f"{args.repeats} rounds; {os.cpu_count()} cores, {_core.max_threads()} OpenMP threads, "
        f"{platform.processor() or platform.machine()}, faiss {faiss.__version__}"
    )
    print("\n| method | median s | x FAISS alone | planted pairs grouped |\n|---|---:|---:|---:|")
    print(f"| FAISS alone (index + kNN + reference search) | {alone:.1f} | 1.00 | |")
    print(
        f"| scurate (near dups + density + novelty) | {ours:.1f} | {ours / alone:.2f} | "
        f"{statistics.median(recall):.4f} |"
    )
    if args.json:
        args.json.write_text(json.dumps({"times": times, "recall": recall}, indent=2))


if __name__ == "__main__":
    main()

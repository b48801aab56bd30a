"""The one IVF rule against the rule scoring used before it, on the same embedding.

Before the FAISS code was gathered into ``scurate/_compute/faiss_index.py`` there were two IVF
rules: scoring's (``IVF{4 sqrt n}``, 16 lists probed, 64 training rows per list, FAISS's 25
k-means iterations) and the policies' kNN (``IVF{sqrt n}``, 6 probed, 40 rows per list, 10
iterations), which the policies had measured as the same recall for a tenth of the training.
Now both use the second. This script checks that choice where scoring needs it: the same seeded
PCA-like embedding with planted near-duplicate pairs (as ``bench_scoring.py``), scored by
:func:`scurate._compute.scoring.neighbour_scores` under each rule, in alternating rounds:

- wall time of the whole scoring (index training, one search of every cell, reductions);
- planted pairs found (both cells in one near-duplicate group);
- recall of the 10 nearest neighbours of 2,000 sampled cells against an exact search.

Usage::

    python benchmarks/bench_ivf_rule.py                     # 1M x 50, 2 rounds
    python benchmarks/bench_ivf_rule.py --cells 200000 --repeats 3

Never run in CI.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from scurate import _core
from scurate._compute import faiss_index
from scurate._compute.scoring import neighbour_scores

from bench_scoring import planted

OLD = {"NPROBE": 16, "TRAIN_PER_LIST": 64, "KMEANS_ITERATIONS": 25}


@contextmanager
def rule(name: str) -> Iterator[str]:
    """Set faiss_index's constants to a rule and yield its factory string's list count rule."""
    saved = {k: getattr(faiss_index, k) for k in OLD}
    try:
        if name == "before (scoring's rule)":
            for key, value in OLD.items():
                setattr(faiss_index, key, value)
        yield name
    finally:
        for key, value in saved.items():
            setattr(faiss_index, key, value)


def factory(name: str, n: int) -> str:
    lists = int(min(65536, max(16, 4 * math.sqrt(n)))) if name.startswith("before") else None
    return f"IVF{lists},Flat" if lists else f"IVF{faiss_index.ivf_lists(n)},Flat"


def knn_recall(x: np.ndarray, index: Any, sample: np.ndarray, exact: np.ndarray) -> float:
    _, rows = faiss_index.search(index, x[sample], 11)
    return float(
        np.mean([len(set(a[1:]) & set(b[1:])) / 10 for a, b in zip(rows, exact, strict=True)])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lists", type=float, help="try LISTS_PER_SQRT_N (default: the rule's)")
    parser.add_argument("--nprobe", type=int, help="try NPROBE (default: the rule's)")
    parser.add_argument("--only-rule", action="store_true", help="skip the rule before")
    args = parser.parse_args()
    if args.lists is not None:
        faiss_index.LISTS_PER_SQRT_N = args.lists
    if args.nprobe is not None:
        faiss_index.NPROBE = args.nprobe

    x, src, dst = planted(args.cells, args.pairs, args.seed)
    sample = np.random.default_rng(args.seed + 2).choice(len(x), 2000, replace=False)
    _, exact = faiss_index.search(faiss_index.flat_index(x), x[sample], 11)
    names = ["before (scoring's rule)", "the one rule"][1 if args.only_rule else 0 :]
    times: dict[str, list[float]] = {n: [] for n in names}
    found: dict[str, float] = {}
    recall: dict[str, float] = {}
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            with rule(name):
                spec = factory(name, len(x))
                start = time.perf_counter()
                scores = neighbour_scores(x, index_factory=spec)
                times[name].append(time.perf_counter() - start)
                group = scores.near_dup_group
                found[name] = float(((group[src] >= 0) & (group[src] == group[dst])).mean())
                if name not in recall:
                    index, _ = faiss_index.build_index(x, factory=spec)
                    recall[name] = knn_recall(x, index, sample, exact)
            print(f"round {r + 1}: {name} {spec} {times[name][-1]:.1f} s", file=sys.stderr)

    import faiss

    print(
        f"\n{args.cells:,} cells x {x.shape[1]} dims, {args.pairs:,} planted pairs; "
        f"{args.repeats} alternating rounds; {os.cpu_count()} cores, "
        f"{_core.max_threads()} OpenMP threads, {platform.processor() or platform.machine()}, "
        f"faiss {faiss.__version__}"
    )
    base = statistics.median(times[names[0]])
    print("\n| rule | index | median s | x before | planted pairs grouped | recall@10 |")
    print("|---|---|---:|---:|---:|---:|")
    for name in names:
        med = statistics.median(times[name])
        print(
            f"| {name} | {factory(name, len(x))} | {med:.1f} | {med / base:.2f} | "
            f"{found[name]:.4f} | {recall[name]:.4f} |"
        )


if __name__ == "__main__":
    main()

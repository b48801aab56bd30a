"""The stage after selection: covering radius, weights and mean distance of a selection.

``select`` reports the covering radius at the budget (the largest distance of any pool cell to
its nearest selected cell), each selected cell's weight (the pool cells nearest to it) and the
mean distance. Before, it found the radius with a second pruned farthest-first traversal from
the picks (``covering_radius``) and then searched the pool against the picks for the weights;
now one search gives all three (``assign``: exact flat search where affordable, else IVF over
the selected cells). This times both on the same seeded PCA-like embedding and picks, in
alternating rounds, and checks that the radii agree.

Usage::

    python benchmarks/bench_coverage.py                       # 200k x 50, 10k picks
    python benchmarks/bench_coverage.py --cells 1000000 --picks 50000 --repeats 1

Never run in CI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from scurate._compute.kernels import covering_radius, farthest_first
from scurate._compute.weights import assign

from _data import pca_like


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--picks", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x, _ = pca_like(np.random.default_rng(args.seed), args.cells)
    x = np.ascontiguousarray(x, dtype=np.float32)
    # the picks of a pool with cells set aside: farthest-first over all but the first 1 %
    aside = args.cells // 100
    order, _ = farthest_first(x[aside:], args.picks)
    order = order + aside
    times: dict[str, list[float]] = {"traversal + search (before)": [], "one search (now)": []}
    radius: dict[str, float] = {}

    def before() -> None:
        radius["before"] = covering_radius(x, order)
        assign(x, order)

    def now() -> None:
        nearest = assign(x, order)
        radius["now"] = nearest.covering_radius(x, order)
        radius["exact"] = float(nearest.exact)

    runs = dict(zip(times, (before, now), strict=True))
    for r in range(args.repeats):
        for name in list(runs) if r % 2 == 0 else list(runs)[::-1]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
            print(f"round {r + 1}: {name} {times[name][-1]:.1f} s", file=sys.stderr)
    base = statistics.median(times["traversal + search (before)"])
    print(
        f"\n{args.cells:,} cells x {x.shape[1]} dims, {args.picks:,} picks, {args.repeats} "
        f"alternating rounds, {os.cpu_count()} cores; radius before {radius['before']:.6f}, "
        f"now {radius['now']:.6f} ({'exact' if radius['exact'] else 'approximate'} search)"
    )
    print("\n| method | median s | x before |\n|---|---:|---:|")
    for name, values in times.items():
        print(
            f"| {name} | {statistics.median(values):.2f} | {statistics.median(values) / base:.2f} |"
        )


if __name__ == "__main__":
    main()

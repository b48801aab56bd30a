"""A second ``select`` on the same sources: from the work dir, against computing it all again.

A curation team runs ``select`` several times on one corpus (another budget, policy or strata).
The first run keeps the scored pool in its work dir; this times, on the same h5ad files of raw
counts (``bench_loader.write_files``: Poisson counts, ``--files`` x ``--cells`` x ``--genes``):

- ``first run``: a fresh work dir, everything computed and stored;
- ``rerun from the work dir``: another budget and policy, the pool read back;
- ``rerun without it`` (``--no-cache``): the same other budget and policy, computed again.

Each is a ``scurate select`` process (import and startup included), ``--repeats`` rounds with the
order of the last two alternating; medians, and the ratio of each to the first run. It checks
that both reruns wrote the same manifest, byte for byte.

Usage::

    python benchmarks/bench_rerun.py                                  # 5 x 40,000 cells
    python benchmarks/bench_rerun.py --files 5 --cells 200000 --repeats 1

Never run in CI.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_loader import write_files


def run(*args: str) -> float:
    start = time.perf_counter()
    scurate = Path(sys.executable).parent / "scurate"  # the command installed beside python
    subprocess.run([str(scurate), *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--cells", type=int, default=40_000)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--budget", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/scurate-bench/rerun"))
    args = parser.parse_args()
    data = args.cache / f"{args.files}x{args.cells}x{args.genes}"
    data.mkdir(parents=True, exist_ok=True)
    write_files(data, args.files, args.cells, args.genes, seed=0)
    times: dict[str, list[float]] = {
        "first run": [],
        "rerun from the work dir": [],
        "rerun without it": [],
    }
    other = ["-b", str(args.budget * 2), "--policy", "facility"]
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            work = out / "work"
            base = [str(data), "--work-dir", str(work)]
            times["first run"].append(
                run("select", *base, "-b", str(args.budget), "-o", str(out / "a"))
            )
            reruns = {
                "rerun from the work dir": [*base, *other, "-o", str(out / "b")],
                "rerun without it": [str(data), *other, "--no-cache", "-o", str(out / "c")],
            }
            for name in list(reruns) if r % 2 == 0 else list(reruns)[::-1]:
                times[name].append(run("select", *reruns[name]))
                print(f"round {r + 1}: {name} {times[name][-1]:.1f} s", file=sys.stderr)
            same = (out / "b" / "manifest.parquet").read_bytes() == (
                out / "c" / "manifest.parquet"
            ).read_bytes()
            print(f"round {r + 1}: reruns wrote the same manifest: {same}", file=sys.stderr)
            shutil.rmtree(work, ignore_errors=True)
    first = statistics.median(times["first run"])
    cells = args.files * args.cells
    print(
        f"\n{cells:,} cells in {args.files} h5ad files x {args.genes} genes; budget "
        f"{args.budget} (kcenter), then {args.budget * 2} (facility); {args.repeats} rounds"
    )
    print("\n| run | median s | x first run |\n|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median / first:.2f} |")


if __name__ == "__main__":
    main()

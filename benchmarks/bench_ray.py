"""``--backend ray`` against ``--backend local`` on one corpus: what Ray costs on one machine.

Data: bench_e2e.py's raw-count corpus (the same generator, the same cache under
``/tmp/scurate-bench/e2e``; ``--cells`` cells over ``--files`` h5ad files).

Runs, each ``scurate select DATA --budget B --no-cache`` in a fresh process, ``--repeats``
rounds whose order alternates, medians reported:

- ``local``: ``--backend local --threads T``;
- ``ray, N worker CPUs`` for each N of ``--ray-cpus`` (default 1 and 2): a local Ray cluster
  started beforehand with ``ray start --head --num-cpus N`` (its start is timed once, apart),
  the run given ``--backend ray --ray-address ADDRESS --threads T``: the per-source stages run
  as tasks on the N CPUs, the driver's own stages (neighbours, scores, the policy) on T threads.

Every 0.2 s it samples the resident memory of the driver (the scurate process and its
children) and of the Ray cluster's processes (GCS, raylet, workers: every process whose command
line names Ray's), and reports the peak of each and of their sum. The sum counts the object
store's shared pages in every process that maps them, so it is an upper bound. It prints the
machine (load average before and after: another job may share the cores), one markdown table
(median wall s, peak RSS GB, the ratio to local), and report.json's stage timings per run; the
raw numbers go to ``OUT/bench_ray.json``.

Usage::

    .venv/bin/python benchmarks/bench_ray.py                          # 1M cells, 5 files
    .venv/bin/python benchmarks/bench_ray.py --cells 200000 --repeats 1

Needs ``pip install '.[ray]'``. Never run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench_e2e import GENERATOR_VERSION, machine, warm, write_counts

RAY_PROCESS = ("gcs_server", "raylet", "default_worker.py", "ray::", "dashboard", "log_monitor")


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, RSS bytes, command line) of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            pages = int(Path(f"/proc/{entry}/statm").read_text().split()[1])
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry)] = (ppid, pages * os.sysconf("SC_PAGE_SIZE"), cmd)
    return out


class Sampler:
    """Peak RSS of a process tree and of the Ray cluster's processes, sampled every 0.2 s."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peaks = {"driver_gb": 0.0, "ray_gb": 0.0, "sum_gb": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            procs = _processes()
            tree, todo = set(), [self.root]
            while todo:
                pid = todo.pop()
                tree.add(pid)
                todo.extend(p for p, (ppid, _, _) in procs.items() if ppid == pid and p not in tree)
            ray = {p for p, (_, _, cmd) in procs.items() if any(r in cmd for r in RAY_PROCESS)}
            driver = sum(procs[p][1] for p in tree - ray if p in procs) / 1e9
            on_ray = sum(procs[p][1] for p in ray) / 1e9
            for key, value in (("driver_gb", driver), ("ray_gb", on_ray)):
                self.peaks[key] = max(self.peaks[key], value)
            self.peaks["sum_gb"] = max(self.peaks["sum_gb"], driver + on_ray)
            self._stop.wait(0.2)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {k: round(v, 3) for k, v in self.peaks.items()}


def run(cmd: list[str], log: Path) -> dict[str, Any]:
    """``cmd`` in a fresh process: wall s, peak RSS (driver, Ray, sum), report.json's timings."""
    start = time.perf_counter()
    with log.with_suffix(".out").open("wb") as out, log.with_suffix(".err").open("wb") as err:
        # from /tmp: Ray puts the driver's folder first on its workers' path, and a scurate
        # checkout there would hide the installed scurate
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd="/tmp")
        sampler = Sampler(proc.pid)
        rc = proc.wait()
        peaks = sampler.stop()
    wall = time.perf_counter() - start
    if rc != 0:
        tail = log.with_suffix(".err").read_text(errors="replace").strip().splitlines()[-15:]
        raise SystemExit("\n".join([*tail, f"failed (exit {rc}): {' '.join(cmd)}"]))
    return {"wall_s": round(wall, 2), **peaks}


def start_ray(ray: Path, cpus: int) -> tuple[str, float]:
    """A local Ray cluster of ``cpus`` CPUs; its address and the seconds it took to start."""
    start = time.perf_counter()
    subprocess.run(
        [
            str(ray),
            "start",
            "--head",
            f"--num-cpus={cpus}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        check=True,
        capture_output=True,
        cwd="/tmp",  # Ray puts the starting folder on its workers' path: not a scurate checkout
    )
    return "auto", time.perf_counter() - start


def stop_ray(ray: Path) -> None:
    subprocess.run([str(ray), "stop", "--force"], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--budget", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="the driver's --threads")
    parser.add_argument("--ray-cpus", default="1,2", help="worker CPUs of each Ray cluster")
    parser.add_argument("--data", type=Path, default=Path("/tmp/scurate-bench/e2e"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/ray"))
    args = parser.parse_args()
    args.out = args.out.resolve()

    # bench_e2e.py's defaults for everything but the size: the same files it generates
    params: dict[str, Any] = {
        "generator": GENERATOR_VERSION,
        "mode": "counts",
        "cells": args.cells,
        "files": args.files,
        "types": 40,
        "rare": 3,
        "donors": 4,
        "seed": 0,
        "genes": 20_000,
        "gene_names": "ensembl",
        "nnz": 500,
        "lineages": 6,
        "copies": round(args.cells * 2_000 / 1_000_000) if args.files > 1 else 0,
    }
    data = args.data / f"counts-{args.cells}x{args.files}"
    start = time.perf_counter()
    paths = write_counts(data, params)
    print(f"data in {data} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    warm(paths)
    bin_dir = Path(sys.executable).parent
    scurate, ray = bin_dir / "scurate", bin_dir / "ray"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    info: dict[str, Any] = {
        "cells": args.cells,
        "files": args.files,
        "budget": args.budget,
        "threads": args.threads,
        "machine": machine(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    configs = ["local", *(f"ray-{n}" for n in args.ray_cpus.split(","))]
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    ray_start: dict[str, float] = {}
    for round_ in range(args.repeats):
        for config in configs if round_ % 2 == 0 else configs[::-1]:
            out = args.out / "runs" / f"{config}-{round_}"
            cmd = [str(scurate), "select", *map(str, paths), "--budget", str(args.budget)]
            cmd += ["-o", str(out), "--no-cache", "--overwrite", "--json"]
            cmd += ["--threads", str(args.threads)]
            if config != "local":
                address, took = start_ray(ray, int(config.split("-")[1]))
                ray_start.setdefault(config, round(took, 2))
                cmd += ["--backend", "ray", "--ray-address", address]
            try:
                print(f"{config}, round {round_ + 1}: {' '.join(cmd[1:3])} ...", file=sys.stderr)
                result = run(cmd, args.out / "logs" / f"{config}-{round_}")
            finally:
                if config != "local":
                    stop_ray(ray)
            report = json.loads((out / "report.json").read_text())
            result["timings_s"] = {k: round(v, 2) for k, v in report["timings_s"].items()}
            results[config].append(result)
            print(f"  {json.dumps(result)}", file=sys.stderr)
            info["partial"] = results
            (args.out / "bench_ray.partial.json").write_text(json.dumps(info, indent=1))
    info.pop("partial", None)
    info["load_after"] = [round(x, 2) for x in os.getloadavg()]
    info["ray_start_s"] = ray_start
    info["results"] = results
    (args.out / "bench_ray.json").write_text(json.dumps(info, indent=1))
    print_table(info, configs)


def print_table(info: dict[str, Any], configs: list[str]) -> None:
    m = info["machine"]
    print(
        f"{info['cells']:,} cells in {info['files']} files, budget {info['budget']:,}; "
        f"{m['cpu']}, {m['cores_usable']} cores, {m['mem_gib']} GiB; load average "
        f"{info['load_before']} before, {info['load_after']} after"
    )
    print("| run | wall s (median) | driver GB | Ray GB | sum GB | wall / local |")
    print("|---|---|---|---|---|---|")
    local = statistics.median(r["wall_s"] for r in info["results"]["local"])
    for config in configs:
        rs = info["results"][config]
        wall = statistics.median(r["wall_s"] for r in rs)
        peaks = [statistics.median(r[k] for r in rs) for k in ("driver_gb", "ray_gb", "sum_gb")]
        cells = " | ".join(f"{p:.2f}" for p in peaks)
        walls = ", ".join(f"{r['wall_s']:.0f}" for r in rs)
        print(f"| {config} | {wall:.1f} ({walls}) | {cells} | {wall / local:.2f} |")
    print(f"Ray cluster start (apart from the runs): {info['ray_start_s']}")
    for config in configs:
        print(f"{config} stages: {info['results'][config][0]['timings_s']}")


if __name__ == "__main__":
    main()

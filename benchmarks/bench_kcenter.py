"""Benchmark scurate's exact k-center against the subsamplers people use instead.

Every method picks ``k = budget * n`` cells of the same seeded PCA-like embedding
(:func:`_data.pca_like`). Each (method, size, budget) runs in a fresh child process, which
times ``--repeats`` calls with ``time.perf_counter`` and reports its own peak RSS above the
baseline of having imported the method and loaded the data. The parent then scores the
selection: distance of every cell to its nearest selected cell (faiss, exact), cell types hit
(all, and the rare ones) and the Shannon entropy of the selection's type mix.

The plain numpy farthest-point loop (and scSampler, whose per-pick cost is also one pass over
the data) is run to ``k`` only up to ``--loop-max-picks``; past that its first
``--probe-picks`` picks are timed and the time is extrapolated linearly to ``k``, labelled so
in the table, with no quality numbers (it never ran to ``k``).

Usage::

    python benchmarks/bench_kcenter.py --quick
    python benchmarks/bench_kcenter.py --sizes 100000 --budgets 0.01,0.1 --repeats 3

Never run in CI.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scurate._compute.faiss_index import nearest_distance

import _data

METHODS: dict[str, str] = {
    "scurate": "scurate kcenter",
    "numpy": "numpy farthest-point",
    "geosketch": "geosketch",
    "scsampler": "scSampler",
    "uniform": "uniform random",
}
# Methods whose cost is one pass over the data per pick: extrapolated past --loop-max-picks.
LOOP_METHODS = {"numpy", "scsampler"}
# Optional third-party methods: tried once on tiny data first, skipped with the reason on failure.
OPTIONAL = {"geosketch": "geosketch", "scsampler": "scsampler"}

Selector = Callable[[NDArray[np.float32], int, int, int], tuple[NDArray[np.int64], dict[str, Any]]]


# --------------------------------------------------------------------------------------------
# The methods (imported only in the child that runs them)
# --------------------------------------------------------------------------------------------


def numpy_farthest_point(x: NDArray[np.float32], k: int, first: int = 0) -> NDArray[np.int64]:
    """Farthest-point sampling as a user writes it: one float32 pass over ``x`` per pick."""
    order = np.empty(k, dtype=np.int64)
    d = np.full(x.shape[0], np.inf, dtype=np.float32)
    p = first
    for i in range(k):
        order[i] = p
        d = np.minimum(d, ((x - x[p]) ** 2).sum(1))
        p = int(d.argmax())
    return order


def load_method(name: str) -> Selector:
    """Import ``name``'s implementation and return it as ``f(x, k, seed, first)``."""
    if name == "scurate":
        from scurate import _core

        def run_scurate(x: NDArray[np.float32], k: int, seed: int, first: int) -> Any:
            order, radii = _core.kcenter(x, k, first=first)
            return order, {"radius": float(radii[-1]) if k else 0.0}

        return run_scurate
    if name == "numpy":
        return lambda x, k, seed, first: (numpy_farthest_point(x, k, first), {})
    if name == "geosketch":
        from geosketch import gs

        return lambda x, k, seed, first: (
            np.asarray(gs(x, k, replace=False, seed=seed), dtype=np.int64),
            {},
        )
    if name == "scsampler":
        from scsampler import scsampler

        return lambda x, k, seed, first: (
            np.asarray(scsampler(x, n_obs=k, random_state=seed), dtype=np.int64),
            {},
        )
    if name == "uniform":
        return lambda x, k, seed, first: (
            np.random.default_rng(seed).choice(x.shape[0], size=k, replace=False).astype(np.int64),
            {},
        )
    raise ValueError(f"unknown method {name!r}")


def _status_mib(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MiB, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS; False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_mib() -> float:
    """This process's own peak RSS, MiB.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` of a child started by (v)fork + exec starts at
    the parent's peak, which would hide everything a small method allocates.
    """
    hwm = _status_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_main(spec_path: str) -> int:
    """Run one (method, data, k) cell; append one JSON line per repeat to ``spec['log']``."""
    spec = json.loads(Path(spec_path).read_text())
    log = Path(spec["log"])

    def emit(rec: dict[str, Any]) -> None:
        with log.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    try:
        fn = load_method(spec["method"])
        x = np.load(spec["x"])
        reset = _reset_peak()
        base = _peak_mib()
        emit({"baseline_mib": base, "peak_reset": reset, "rss_mib": _status_mib("VmRSS")})
        for rep in range(spec["repeats"]):
            t0 = time.perf_counter()
            sel, extra = fn(x, spec["k"], spec["seed"], spec["first"])
            seconds = time.perf_counter() - t0
            if rep == 0:
                np.save(spec["sel"], np.asarray(sel, dtype=np.int64))
            emit({"rep": rep, "seconds": seconds, "peak_mib": _peak_mib() - base, **extra})
    except Exception as e:  # noqa: BLE001 -- any failure is the parent's to report
        emit({"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
        return 1
    return 0


# --------------------------------------------------------------------------------------------
# Parent: run the children, score the selections
# --------------------------------------------------------------------------------------------


def run_child(
    method: str,
    x_path: Path,
    k: int,
    *,
    repeats: int,
    seed: int,
    first: int,
    timeout: float,
    workdir: Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run one cell in a fresh interpreter; return its times, memory and selection path."""
    tag = f"{method}-{x_path.stem}-{k}"
    spec: dict[str, Any] = {
        "method": method,
        "x": str(x_path),
        "k": k,
        "repeats": repeats,
        "seed": seed,
        "first": first,
        "log": str(workdir / f"{tag}.jsonl"),
        "sel": str(workdir / f"{tag}.sel.npy"),
    }
    Path(spec["log"]).unlink(missing_ok=True)
    spec_path = workdir / f"{tag}.json"
    spec_path.write_text(json.dumps(spec))
    out: dict[str, Any] = {"timed_out": False}
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})},
        )
        out["stderr_tail"] = proc.stderr[-2000:]
    except subprocess.TimeoutExpired:
        out["timed_out"] = True
    recs = (
        [json.loads(line) for line in Path(spec["log"]).read_text().splitlines()]
        if Path(spec["log"]).exists()
        else []
    )
    reps = [r for r in recs if "rep" in r]
    out["seconds"] = [r["seconds"] for r in reps]
    out["peak_mib"] = max((r["peak_mib"] for r in reps), default=None)
    out["baseline_mib"] = next((r["baseline_mib"] for r in recs if "baseline_mib" in r), None)
    out["extra"] = {k_: v for k_, v in (reps[0] if reps else {}).items() if k_ not in {"rep"}}
    errors = [r for r in recs if "error" in r]
    if errors:
        out["error"] = errors[0]["error"]
        out["traceback"] = errors[0]["traceback"]
    elif not reps and not out["timed_out"]:
        out["error"] = "child died: " + (out.get("stderr_tail") or "no output").strip()[-300:]
    out["sel_path"] = spec["sel"] if reps else None
    return out


def preflight(method: str, workdir: Path, timeout: float) -> str | None:
    """Try an optional method on tiny data; return why it cannot run, or None."""
    try:
        importlib.metadata.version(OPTIONAL[method])
    except importlib.metadata.PackageNotFoundError:
        return f"package {OPTIONAL[method]!r} is not installed"
    tiny = workdir / "preflight.npy"
    np.save(tiny, np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32))
    res = run_child(method, tiny, 10, repeats=1, seed=0, first=0, timeout=timeout, workdir=workdir)
    if res.get("timed_out"):
        return f"timed out after {timeout:.0f} s on 200 x 5 data"
    if "error" in res:
        where = res["traceback"].strip().splitlines() if "traceback" in res else []
        frame = next((ln.strip() for ln in reversed(where) if ln.strip().startswith("File")), "")
        return f"fails on 200 x 5 data: {res['error']}" + (f" ({frame})" if frame else "")
    return None


def entropy_bits(labels: NDArray[np.int64]) -> float:
    """Shannon entropy (bits) of the label mix."""
    counts = np.bincount(labels)
    p = counts[counts > 0] / labels.size
    return float(-(p * np.log2(p)).sum())


def quality(
    x: NDArray[np.float32], lab: NDArray[np.int64], sel: NDArray[np.int64]
) -> dict[str, Any]:
    """Coverage and cell-type numbers of one selection."""
    dist = nearest_distance(x[sel], x)  # scurate's exact FAISS search
    sizes = np.bincount(lab)
    present = np.flatnonzero(sizes)
    hit = np.zeros(sizes.size, dtype=bool)
    hit[np.unique(lab[sel])] = True
    out: dict[str, Any] = {
        "max_dist": float(dist.max()),
        "mean_dist": float(dist.mean(dtype=np.float64)),
        "clusters_hit": int(hit[present].sum()),
        "clusters": int(present.size),
        "entropy_bits": entropy_bits(lab[sel]),
        "n_selected": int(sel.size),
        "n_unique": int(np.unique(sel).size),
    }
    for name, frac in (("rare_0.5", 0.005), ("rare_0.1", 0.001)):
        rare = present[sizes[present] < frac * lab.size]
        out[f"{name}_hit"] = int(hit[rare].sum())
        out[f"{name}_total"] = int(rare.size)
    return out


def compare_orders(
    x: NDArray[np.float32], a: NDArray[np.int64], b: NDArray[np.int64]
) -> dict[str, Any]:
    """Where two farthest-first orders first differ, and how close the two candidates were."""
    if a.shape == b.shape and np.array_equal(a, b):
        return {"identical": True}
    n = min(a.size, b.size)
    i = int(np.flatnonzero(a[:n] != b[:n])[0]) if np.any(a[:n] != b[:n]) else n
    res: dict[str, Any] = {"identical": False, "first_difference": i}
    if 0 < i < n:
        picked = x[a[:i]].astype(np.float64)

        def d(row: int) -> float:
            return float(np.sqrt(((picked - x[row].astype(np.float64)) ** 2).sum(1).min()))

        res.update({"scurate_pick": int(a[i]), "numpy_pick": int(b[i])})
        res.update({"scurate_pick_dist": d(int(a[i])), "numpy_pick_dist": d(int(b[i]))})
    return res


def machine() -> dict[str, Any]:
    """CPU count, model and load, as the table header states them."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def versions() -> dict[str, str | None]:
    """Installed versions of everything measured."""
    out: dict[str, str | None] = {}
    for pkg in ("scurate", "numpy", "faiss-cpu", "faiss-gpu", "geosketch", "scsampler"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


# --------------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------------


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}g}" if abs(v) < 10**digits else f"{v:.0f}"


def table(cells: list[dict[str, Any]]) -> str:
    """The markdown table of all cells."""
    head = [
        "method",
        "n",
        "budget",
        "median s",
        "min–max s",
        "× scurate",
        "peak MiB",
        "max dist",
        "mean dist",
        "clusters hit",
        "rare hit <0.5 %",
        "rare hit <0.1 %",
        "entropy (bits)",
    ]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        q = c.get("quality")
        st = c["status"]
        if st in {"skipped", "error", "timeout"}:
            note = {"skipped": "skipped", "error": "error", "timeout": "timed out"}[st]
            med = note if st == "skipped" else f"{note}: {c.get('reason', '')}".strip(": ")
            if st == "timeout" and c.get("median_s") is not None:
                med = f"{_fmt(c['median_s'])} (timed out after {len(c['seconds'])} repeats)"
        else:
            med = _fmt(c["median_s"])
            if st == "extrapolated":
                med += f" (extrapolated from {c['probe_picks']} picks)"
        mm = (
            f"{_fmt(c['min_s'])}–{_fmt(c['max_s'])}"
            if c.get("min_s") is not None and st != "extrapolated"
            else "—"
        )
        if st == "extrapolated" and c.get("min_s") is not None:
            mm = f"{_fmt(c['min_s'])}–{_fmt(c['max_s'])} (extrapolated)"
        ratio = f"{c['ratio']:.3g}" if c.get("ratio") is not None else "—"
        peak = _fmt(c.get("peak_mib"), 4) if c.get("peak_mib") is not None else "—"
        if q:
            qual = [
                f"{q['max_dist']:.3f}",
                f"{q['mean_dist']:.3f}",
                f"{q['clusters_hit']}/{q['clusters']}",
                f"{q['rare_0.5_hit']}/{q['rare_0.5_total']}",
                f"{q['rare_0.1_hit']}/{q['rare_0.1_total']}",
                f"{q['entropy_bits']:.2f}",
            ]
        else:
            qual = ["—"] * 6
        budget = f"{c['budget'] * 100:g} % ({c['k']})"
        row = [c["label"], f"{c['n']:,}", budget, med, mm, ratio, peak, *qual]
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="cells, comma-separated")
    ap.add_argument("--budgets", default="0.01,0.1", help="fractions of n, comma-separated")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    ap.add_argument("--out", default="bench-out/bench_kcenter.json", help="raw numbers (JSON)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20k cells, 1 %%, 1 repeat")
    ap.add_argument("--methods", default=",".join(METHODS), help="subset of " + ",".join(METHODS))
    ap.add_argument("--seed", type=int, default=0, help="data and sampler seed")
    ap.add_argument("--first", type=int, default=0, help="first pick of the farthest-first runs")
    ap.add_argument(
        "--loop-max-picks",
        type=int,
        default=2000,
        help="numpy farthest-point and scSampler run to k only up to this many picks",
    )
    ap.add_argument("--probe-picks", type=int, default=200, help="picks timed when extrapolating")
    ap.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds per (method, n, budget) child"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS for the timed children (default: unset, all cores)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.budgets, args.repeats = "20000", "0.01", 1
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON."""
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)

    sizes = [int(float(s)) for s in args.sizes.split(",")]
    budgets = [float(b) for b in args.budgets.split(",")]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods: {sorted(unknown)}; choose from {list(METHODS)}")
    if "scurate" in methods:
        methods = ["scurate"] + [m for m in methods if m != "scurate"]

    data_infos: list[dict[str, Any]] = []
    info: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(),
        "args": vars(args),
        "data": data_infos,
    }
    cpus = info["machine"]["cpus_usable"] or info["machine"]["cpu_count"] or 1
    if info["machine"]["loadavg_start"][0] > 0.5 * cpus:
        print(
            f"warning: load average {info['machine']['loadavg_start'][0]:.1f} on {cpus} CPUs "
            "at start: other work is running, timings will be noisy",
            file=sys.stderr,
        )

    cells: list[dict[str, Any]] = []
    notes: list[str] = []
    skip: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-kcenter-") as tmp:
        workdir = Path(tmp)
        for m in methods:
            if m in OPTIONAL:
                reason = preflight(m, workdir, timeout=300.0)
                if reason:
                    skip[m] = reason
                    print(f"skipping {METHODS[m]}: {reason}", file=sys.stderr)

        for n in sizes:
            x, lab = _data.make(n, seed=args.seed)
            x_path = workdir / f"x{n}.npy"
            np.save(x_path, x)
            sizes_ = np.bincount(lab)
            data_info = {
                "n": n,
                "dim": int(x.shape[1]),
                "clusters": int((sizes_ > 0).sum()),
                "entropy_bits": entropy_bits(lab),
                "rare_0.5": int(((sizes_ > 0) & (sizes_ < 0.005 * n)).sum()),
                "rare_0.1": int(((sizes_ > 0) & (sizes_ < 0.001 * n)).sum()),
            }
            data_infos.append(data_info)
            print(
                f"data n={n:,}: {data_info['clusters']} clusters, {data_info['rare_0.5']} under "
                f"0.5 %, {data_info['rare_0.1']} under 0.1 %, "
                f"entropy {data_info['entropy_bits']:.2f} bits",
                file=sys.stderr,
            )
            for budget in budgets:
                k = max(1, round(budget * n))
                base_t: float | None = None
                orders: dict[str, NDArray[np.int64]] = {}
                for m in methods:
                    cell: dict[str, Any] = {
                        "method": m,
                        "label": METHODS[m],
                        "n": n,
                        "budget": budget,
                        "k": k,
                    }
                    cells.append(cell)
                    if m in skip:
                        cell.update(status="skipped", reason=skip[m])
                        continue
                    extrapolate = m in LOOP_METHODS and k > args.loop_max_picks
                    k_run = min(args.probe_picks, k) if extrapolate else k
                    print(f"  {METHODS[m]}, n={n:,}, k={k_run:,} ...", file=sys.stderr)
                    res = run_child(
                        m,
                        x_path,
                        k_run,
                        repeats=args.repeats,
                        seed=args.seed,
                        first=args.first,
                        timeout=args.timeout,
                        workdir=workdir,
                        threads=args.threads,
                    )
                    secs = [s * k / k_run for s in res["seconds"]]
                    cell.update(
                        seconds_measured=res["seconds"],
                        seconds=secs,
                        median_s=float(np.median(secs)) if secs else None,
                        min_s=min(secs, default=None),
                        max_s=max(secs, default=None),
                        peak_mib=res["peak_mib"],
                        baseline_mib=res["baseline_mib"],
                        extra=res["extra"],
                        loadavg=os.getloadavg(),
                    )
                    if res.get("error"):
                        cell.update(status="error", reason=res["error"])
                        cell["traceback"] = res.get("traceback")
                        continue
                    if res["timed_out"]:
                        cell.update(status="timeout", reason=f">{args.timeout:g} s")
                    elif extrapolate:
                        cell.update(status="extrapolated", probe_picks=k_run)
                    else:
                        cell["status"] = "ran"
                    if m == "scurate" and cell["median_s"]:
                        base_t = cell["median_s"]
                    if base_t and cell["median_s"] is not None:
                        cell["ratio"] = cell["median_s"] / base_t
                    if not extrapolate and res["sel_path"]:
                        sel = np.load(res["sel_path"])
                        cell["quality"] = quality(x, lab, sel)
                        orders[m] = sel
                        if m == "scurate" and "radius" in res["extra"]:
                            r, mx = res["extra"]["radius"], cell["quality"]["max_dist"]
                            if abs(r - mx) > 1e-3 * max(mx, 1e-12):
                                notes.append(
                                    f"n={n:,} k={k:,}: scurate's final radius {r:.6g} differs "
                                    f"from faiss's max distance {mx:.6g}"
                                )
                if "scurate" in orders and "numpy" in orders:
                    cmp = compare_orders(x, orders["scurate"], orders["numpy"])
                    for c in cells[-len(methods) :]:
                        if c["method"] == "numpy":
                            c["order_check"] = cmp
                    if cmp["identical"]:
                        notes.append(
                            f"n={n:,} k={k:,}: scurate's order equals the numpy farthest-point "
                            f"order pick for pick (both from row {args.first})."
                        )
                    else:
                        notes.append(
                            f"n={n:,} k={k:,}: scurate's order differs from numpy's at pick "
                            f"{cmp['first_difference']}: {json.dumps(cmp)}"
                        )
            del x, lab

    info["machine"]["loadavg_end"] = os.getloadavg()
    m_ = info["machine"]
    v_ = info["versions"]
    print(
        f"\nMachine: {m_['cpu_model']}, {m_['cpu_count']} CPUs ({m_['cpus_usable']} usable), "
        f"load average {m_['loadavg_start'][0]:.1f} at start, {m_['loadavg_end'][0]:.1f} at end; "
        f"Python {m_['python']}"
    )
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in v_.items() if v))
    for d in data_infos:
        print(
            f"Data n={d['n']:,}: {d['clusters']} clusters ({d['rare_0.5']} under 0.5 %, "
            f"{d['rare_0.1']} under 0.1 % of cells), type entropy {d['entropy_bits']:.2f} bits"
        )
    print(
        f"Times: median of {args.repeats} run(s), wall clock, OMP_NUM_THREADS="
        f"{args.threads or os.environ.get('OMP_NUM_THREADS', 'unset')}; peak MiB: the child's peak "
        "RSS above its RSS after import + data load. Distances: Euclidean, every cell to its "
        "nearest selected cell."
    )
    print()
    print(table(cells))
    print()
    if any(c["status"] == "extrapolated" for c in cells):
        print(
            f"extrapolated: the first {args.probe_picks} picks were timed and scaled linearly "
            f"to k (one pass over the data per pick); not run to k, so no quality numbers."
        )
    for s in notes:
        print("note: " + s)
    for m, reason in skip.items():
        print(f"skipped {METHODS[m]}: {reason}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**info, "cells": cells, "notes": notes}, indent=2, default=str))
    print(f"\nraw numbers: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark every scurate policy against the subsamplers a user would pick instead.

All methods pick ``k`` cells of the same seeded PCA-like embedding (:func:`_data.pca_like`).
Each (method, n, k) runs in a fresh child process that times ``--repeats`` calls and reports
its own peak RSS above the baseline of having imported the method and loaded the data (the
machinery of ``bench_kcenter.py``). The parent scores every selection the same way: max and
mean distance of every cell to its nearest selected cell (FAISS, exact), clusters hit (all,
under 0.5 % and under 0.1 % of cells), entropy of the selection's cluster mix, and the facility
location objective on one shared kNN similarity graph.

Facility location is measured three ways on that graph, which the parent builds once with the
policy's own code (FAISS kNN, k = 15) and saves: ``facility`` is the whole policy (its own
graph + greedy), ``facility-greedy`` the native lazy greedy alone on the saved graph, and
``apricot`` apricot-select's lazy ``FacilityLocationSelection`` on the same saved sparse graph
(``metric='precomputed'``; its dense form cannot run at these sizes).

``reweight`` is given the clusters as its cell types, so its clusters-hit numbers hold by
construction; it is there for time and distance.

Usage::

    python benchmarks/bench_policies.py --quick
    python benchmarks/bench_policies.py                      # 100k -> 10k, then 1M -> 10k

Never run in CI.
"""

from __future__ import annotations

import os

# OpenMP threads that spin while they wait collapse when other processes share the cores (on
# this 2-core machine, kcenter 100k -> 10k went from 0.7 s to 17-20 s with one other busy
# process); passive waiting keeps it near 1 s. Set before anything loads an OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import NDArray

import _data
import bench_kcenter as bk

METHODS: dict[str, str] = {
    "kcenter": "scurate kcenter",
    "facility": "scurate facility (graph + greedy)",
    "facility-greedy": "scurate facility greedy, shared graph",
    "sketch": "scurate sketch",
    "reweight": "scurate reweight (clusters as types)",
    "random": "scurate random",
    "numpy": "numpy farthest-point",
    "geosketch": "geosketch",
    "scsampler": "scSampler",
    "apricot": "apricot facility, shared graph",
}
OPTIONAL = {"geosketch": "geosketch", "scsampler": "scsampler", "apricot": "apricot-select"}
LOOP_METHODS = {"numpy", "scsampler"}  # one pass over the data per pick: extrapolated
GRAPH_METHODS = {"facility-greedy", "apricot"}  # read the shared graph
KNN = 15

Runner = Callable[[dict[str, Any]], tuple[NDArray[np.int64], dict[str, Any]]]


# --------------------------------------------------------------------------------------------
# Child: the methods
# --------------------------------------------------------------------------------------------


def _context(x: NDArray[np.float32], seed: int, **params: str) -> Any:
    from scurate._engine.context import SelectionContext

    manifest = pl.DataFrame({"row": np.arange(len(x))})
    return SelectionContext(x, manifest, np.random.default_rng(seed), params=dict(params))


def load_method(name: str, spec: dict[str, Any]) -> Callable[[], tuple[Any, dict[str, Any]]]:
    """``run()`` for one method on the spec's data; imports only what that method needs."""
    x = np.load(spec["x"])
    k, seed = spec["k"], spec["seed"]
    if name in GRAPH_METHODS:
        graph = sp.load_npz(spec["graph"]).tocsr()
    if name == "kcenter":
        from scurate import _core

        return lambda: (_core.kcenter(x, k, first=0)[0], {})
    if name == "facility":
        from scurate import _core

        from scurate_policies.facility import knn_similarity

        def facility() -> tuple[Any, dict[str, Any]]:
            t0 = time.perf_counter()
            g, _ = knn_similarity(_context(x, seed), KNN)
            t1 = time.perf_counter()
            order, _ = _core.facility_location(
                g.indptr.astype(np.int64), g.indices.astype(np.int64), g.data, k
            )
            t2 = time.perf_counter()
            return order, {"graph_s": t1 - t0, "greedy_s": t2 - t1}

        return facility
    if name == "facility-greedy":
        from scurate import _core

        indptr, indices = graph.indptr.astype(np.int64), graph.indices.astype(np.int64)
        values = np.ascontiguousarray(graph.data, dtype=np.float32)
        return lambda: (_core.facility_location(indptr, indices, values, k)[0], {})
    if name == "apricot":
        from apricot import FacilityLocationSelection

        def apricot() -> tuple[Any, dict[str, Any]]:
            sel = FacilityLocationSelection(k, metric="precomputed", optimizer="lazy")
            return np.asarray(sel.fit(graph).ranking, dtype=np.int64), {}

        return apricot
    if name == "sketch":
        from scurate_policies.sketch import sketch

        return lambda: (sketch(_context(x, seed), k), {})
    if name == "reweight":
        from scurate._engine.context import SelectionContext

        from scurate_policies.reweight import reweight

        labels = pl.DataFrame({"cell_type": np.load(spec["labels"]).astype(str)})

        def rw() -> tuple[Any, dict[str, Any]]:
            ctx = SelectionContext(x, labels, np.random.default_rng(seed))
            return reweight(ctx, k), {}

        return rw
    if name == "random":
        from scurate_policies.uniform import uniform

        return lambda: (uniform(_context(x, seed), k), {})
    if name == "numpy":
        return lambda: (bk.numpy_farthest_point(x, k, 0), {})
    if name == "geosketch":
        from geosketch import gs

        return lambda: (np.asarray(gs(x, k, replace=False, seed=seed), dtype=np.int64), {})
    if name == "scsampler":
        from scsampler import scsampler

        return lambda: (
            np.asarray(scsampler(x, n_obs=k, random_state=seed), dtype=np.int64),
            {},
        )
    raise ValueError(f"unknown method {name!r}")


def child_main(spec_path: str) -> int:
    """Run one (method, data, k) cell; append one JSON line per repeat to ``spec['log']``."""
    spec = json.loads(Path(spec_path).read_text())
    log = Path(spec["log"])

    def emit(rec: dict[str, Any]) -> None:
        with log.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    try:
        run = load_method(spec["method"], spec)
        reset = bk._reset_peak()
        base = bk._peak_mib()
        emit({"baseline_mib": base, "peak_reset": reset})
        for rep in range(spec["repeats"]):
            t0 = time.perf_counter()
            sel, extra = run()
            seconds = time.perf_counter() - t0
            if rep == 0:
                np.save(spec["sel"], np.asarray(sel, dtype=np.int64))
            emit({"rep": rep, "seconds": seconds, "peak_mib": bk._peak_mib() - base, **extra})
    except Exception as e:  # noqa: BLE001 -- any failure is the parent's to report
        emit({"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
        return 1
    return 0


# --------------------------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------------------------


def run_child(spec: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    """Run one cell in a fresh interpreter; return its times, memory and selection path."""
    import subprocess

    tag = f"{spec['method']}-{spec['n']}-{spec['k']}"
    spec = {**spec, "log": str(workdir / f"{tag}.jsonl"), "sel": str(workdir / f"{tag}.npy")}
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
        )
        out["stderr_tail"] = proc.stderr[-2000:]
    except subprocess.TimeoutExpired:
        out["timed_out"] = True
    log = Path(spec["log"])
    recs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    reps = [r for r in recs if "rep" in r]
    out["seconds"] = [r["seconds"] for r in reps]
    out["peak_mib"] = max((r["peak_mib"] for r in reps), default=None)
    out["extra"] = [{k: v for k, v in r.items() if k.endswith("_s")} for r in reps]
    errors = [r for r in recs if "error" in r]
    if errors:
        out["error"] = errors[0]["error"]
    elif not reps and not out["timed_out"]:
        out["error"] = "child died: " + (out.get("stderr_tail") or "no output").strip()[-300:]
    out["sel"] = np.load(spec["sel"]) if reps else None
    return out


def preflight(method: str, workdir: Path) -> str | None:
    """Try an optional method on tiny data; return why it cannot run, or None."""
    import importlib.metadata

    try:
        importlib.metadata.version(OPTIONAL[method])
    except importlib.metadata.PackageNotFoundError:
        return f"package {OPTIONAL[method]!r} is not installed"
    rng = np.random.default_rng(0)
    tiny = workdir / "tiny.npy"
    np.save(tiny, rng.normal(size=(300, 5)).astype(np.float32))
    graph = workdir / "tiny-graph.npz"
    sp.save_npz(graph, (sp.random(300, 300, density=0.05, random_state=0) + sp.eye(300)).tocsr())
    spec = {"method": method, "x": str(tiny), "graph": str(graph), "n": 300, "k": 10}
    res = run_child({**spec, "seed": 0, "repeats": 1}, workdir, timeout=300)
    if res["timed_out"]:
        return "timed out on 300 x 5 data"
    return f"fails on 300 x 5 data: {res['error']}" if "error" in res else None


def shared_graph(x: NDArray[np.float32], seed: int) -> tuple[sp.csr_matrix, float]:
    """The facility kNN similarity graph, built once with the policy's own code."""
    from scurate_policies.facility import knn_similarity

    t0 = time.perf_counter()
    graph, _ = knn_similarity(_context(x, seed), KNN)
    return graph.tocsr(), time.perf_counter() - t0


def objective(graph: sp.csr_matrix, sel: NDArray[np.int64]) -> float:
    """Facility location objective of ``sel`` on ``graph`` (row j: the cells j covers)."""
    return float(np.asarray(graph[sel].max(axis=0).todense(), dtype=np.float64).sum())


def table(cells: list[dict[str, Any]]) -> str:
    head = [
        "n → k",
        "method",
        "median s",
        "× kcenter",
        "peak MiB",
        "max dist",
        "mean dist",
        "clusters hit",
        "<0.5 %",
        "<0.1 %",
        "entropy",
        "facility F",
    ]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        q = c.get("quality") or {}
        if c["status"] in {"skipped", "error", "timeout"}:
            med = f"{c['status']}: {c.get('reason', '')}"
        else:
            med = f"{c['median_s']:.3g}"
            if c["status"] == "extrapolated":
                med = f"≈{c['median_s']:.3g} (extrap. from {c['probe_picks']} picks)"
            if len(c["seconds"]) > 1:
                med += f" ({len(c['seconds'])} runs)"
        ratio = f"{c['ratio']:.3g}" if c.get("ratio") is not None else "—"
        peak = f"{c['peak_mib']:.0f}" if c.get("peak_mib") is not None else "—"
        qual = (
            [
                f"{q['max_dist']:.3f}",
                f"{q['mean_dist']:.3f}",
                f"{q['clusters_hit']}/{q['clusters']}",
                f"{q['rare_0.5_hit']}/{q['rare_0.5_total']}",
                f"{q['rare_0.1_hit']}/{q['rare_0.1_total']}",
                f"{q['entropy_bits']:.2f}",
                f"{c['objective']:.1f}" if c.get("objective") is not None else "—",
            ]
            if q
            else ["—"] * 7
        )
        size = f"{c['n']:,} → {c['k']:,}"
        rows.append("| " + " | ".join([size, c["label"], med, ratio, peak, *qual]) + " |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="cells, comma-separated")
    ap.add_argument("--budget", type=int, default=10000, help="cells to pick")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    ap.add_argument("--methods", default=",".join(METHODS), help="subset of " + ",".join(METHODS))
    ap.add_argument(
        "--large-methods",
        default="kcenter,facility,sketch,random,numpy,geosketch",
        help="methods run at sizes above 200k (the others are skipped there)",
    )
    ap.add_argument(
        "--large-repeats",
        default="geosketch=1,facility=1",
        help="repeats for slow methods above 200k, name=count,...",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loop-max-picks", type=int, default=2000)
    ap.add_argument("--probe-picks", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per child")
    ap.add_argument("--out", default="bench-out/bench_policies.json")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20k cells -> 1k, 1 repeat")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.budget, args.repeats = "20000", 1000, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)
    methods = [m for m in args.methods.split(",") if m]
    if unknown := set(methods) - set(METHODS):
        raise SystemExit(f"unknown methods: {sorted(unknown)}")
    large = set(args.large_methods.split(","))
    large_repeats = {
        k: int(v) for k, v in (p.split("=") for p in args.large_repeats.split(",") if p)
    }
    info: dict[str, Any] = {"machine": bk.machine(), "versions": bk.versions(), "args": vars(args)}
    info["omp_wait_policy"] = os.environ["OMP_WAIT_POLICY"]
    for pkg in ("apricot-select", "scipy", "polars"):
        try:
            import importlib.metadata

            info["versions"][pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            info["versions"][pkg] = None
    cells: list[dict[str, Any]] = []
    skip: dict[str, str] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-policies-") as tmp:
        workdir = Path(tmp)
        for m in methods:
            if m in OPTIONAL and (reason := preflight(m, workdir)):
                skip[m] = reason
                print(f"skipping {METHODS[m]}: {reason}", file=sys.stderr)
        for n in (int(float(s)) for s in args.sizes.split(",")):
            x, lab = _data.make(n, seed=args.seed)
            k = args.budget
            x_path, lab_path = workdir / f"x{n}.npy", workdir / f"lab{n}.npy"
            np.save(x_path, x)
            np.save(lab_path, lab)
            graph_path = workdir / f"graph{n}.npz"
            graph: sp.csr_matrix | None = None
            if n <= 200_000 or large & GRAPH_METHODS:  # the shared graph, where it is used
                graph, graph_s = shared_graph(x, args.seed)
                sp.save_npz(graph_path, graph)
                info[f"graph_{n}"] = {"seconds": graph_s, "nnz": int(graph.nnz), "k": KNN}
                print(f"n={n:,}: graph {graph.nnz:,} entries, {graph_s:.1f} s", file=sys.stderr)
            base: float | None = None
            for m in methods:
                cell: dict[str, Any] = {"method": m, "label": METHODS[m], "n": n, "k": k}
                cells.append(cell)
                if m in skip:
                    cell.update(status="skipped", reason=skip[m])
                    continue
                if n > 200_000 and m not in large:
                    cell.update(status="skipped", reason="not run at this size (time box)")
                    continue
                extrapolate = m in LOOP_METHODS and k > args.loop_max_picks
                k_run = min(args.probe_picks, k) if extrapolate else k
                repeats = large_repeats.get(m, args.repeats) if n > 200_000 else args.repeats
                print(f"  {METHODS[m]}, n={n:,}, k={k_run:,} x{repeats} ...", file=sys.stderr)
                spec = {
                    "method": m,
                    "x": str(x_path),
                    "labels": str(lab_path),
                    "graph": str(graph_path),
                    "n": n,
                    "k": k_run,
                    "seed": args.seed,
                    "repeats": repeats,
                }
                res = run_child(spec, workdir, args.timeout)
                secs = [s * k / k_run for s in res["seconds"]]
                cell.update(
                    seconds=secs,
                    median_s=float(np.median(secs)) if secs else None,
                    peak_mib=res["peak_mib"],
                    extra=res["extra"],
                    loadavg=os.getloadavg(),
                )
                if res.get("error"):
                    cell.update(status="error", reason=res["error"][:200])
                    continue
                if res["timed_out"] and not secs:
                    cell.update(status="timeout", reason=f">{args.timeout:g} s")
                    continue
                cell["status"] = "extrapolated" if extrapolate else "ran"
                if extrapolate:
                    cell["probe_picks"] = k_run
                if m == "kcenter":
                    base = cell["median_s"]
                if base:
                    cell["ratio"] = cell["median_s"] / base
                if not extrapolate and res["sel"] is not None:
                    sel = res["sel"]
                    cell["quality"] = bk.quality(x, lab, sel)
                    if graph is not None:
                        cell["objective"] = objective(graph, sel)
            del x, lab, graph
    info["machine"]["loadavg_end"] = os.getloadavg()
    info["wall_s"] = time.perf_counter() - started
    summary = targets(cells, info)
    m_ = info["machine"]
    print(
        f"\nMachine: {m_['cpu_model']}, {m_['cpu_count']} CPUs, load {m_['loadavg_start'][0]:.1f} "
        f"at start, {m_['loadavg_end'][0]:.1f} at end; wall {info['wall_s']:.0f} s; "
        f"OMP_WAIT_POLICY={info['omp_wait_policy']}"
    )
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v))
    print()
    print(table(cells))
    print()
    for line in summary:
        print(line)
    for m, reason in skip.items():
        print(f"skipped {METHODS[m]}: {reason}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**info, "cells": cells, "targets": summary}, indent=2, default=str))
    print(f"\nraw numbers: {out}")
    return 0


def targets(cells: list[dict[str, Any]], info: dict[str, Any]) -> list[str]:
    """The issue's targets, read off the cells measured in this run."""
    got = {(c["method"], c["n"]): c for c in cells if c.get("median_s") is not None}
    lines = []
    for n in sorted({c["n"] for c in cells}):
        kc = got.get(("kcenter", n))
        for peer in ("geosketch", "numpy"):
            p = got.get((peer, n))
            if kc and p:
                extra = ""
                if kc.get("quality") and p.get("quality"):
                    extra = (
                        f"; max dist {kc['quality']['max_dist']:.3f} vs "
                        f"{p['quality']['max_dist']:.3f}"
                    )
                lines.append(
                    f"n={n:,}: kcenter {kc['median_s']:.3g} s, {METHODS[peer]} "
                    f"{p['median_s']:.3g} s: {p['median_s'] / kc['median_s']:.1f}x faster{extra}"
                )
        fg, ap, fe = (
            got.get(("facility-greedy", n)),
            got.get(("apricot", n)),
            got.get(("facility", n)),
        )
        if fg and ap and fg.get("objective") and ap.get("objective"):
            graph_s = info[f"graph_{n}"]["seconds"]
            lines.append(
                f"n={n:,}: facility greedy {fg['median_s']:.3g} s vs apricot "
                f"{ap['median_s']:.3g} s on the same graph: {fg['median_s'] / ap['median_s']:.3f}"
                f" of apricot's time; objective {fg['objective']:.2f} vs {ap['objective']:.2f} "
                f"({100 * (fg['objective'] / ap['objective'] - 1):+.3f} %)"
            )
            if fe:
                lines.append(
                    f"n={n:,}: end to end, facility policy (own graph + greedy) "
                    f"{fe['median_s']:.3g} s vs graph ({graph_s:.3g} s) + apricot "
                    f"= {graph_s + ap['median_s']:.3g} s: "
                    f"{fe['median_s'] / (graph_s + ap['median_s']):.3f} of it"
                )
    return lines


if __name__ == "__main__":
    sys.exit(main())

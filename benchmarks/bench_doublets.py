"""scurate's doublet calls against Scrublet's, on the same counts.

Inputs (``--cases``, all by default):

- ``planted``: the QC test corpus (``tests/qc_corpus.py``, seed 0): 2,814 real cells of 7 types,
  100 low-depth cells and 80 planted heterotypic doublets (two cells' counts summed);
- ``cellbench``: CellBench lung cell lines; on its three 5-line CEL-seq2 plates each well's
  ``cell_number`` (1 or 2 cells sorted into it) is the truth for 909 cells;
- ``baron``: Baron mouse pancreas (no truth: the call rate only);
- ``example``: the example corpus shipped in scurate (4 files, 2,400 synthetic cells, no
  doublet planted: every call is a singlet flagged).

scurate: ``scurate.score`` with its defaults (one thread), its ``doublet_score`` and the
``doublets=auto`` threshold from report.json; a cell is called above the threshold. Scrublet:
the standalone ``scrublet`` package in another Python (``--peer-python``: it needs Python, numpy,
scipy and ``scrublet``, not scurate), run by ``_scrublet_peer.py`` in a subprocess with its own
defaults, once per file (what scurate calls a source, where its doublets are simulated) and, for
files with batches (``source_file``), once per batch as Scrublet's docs advise. Both sides run
with one BLAS/OpenMP/numba thread; times are medians over ``--repeats`` runs. For scurate the
table gives its doublet step alone (simulation, projection, search and threshold, given the
PCA and neighbour lists the pool has anyway) and the whole of embed + neighbours + doublets,
which is what Scrublet's one call does (normalize, PCA, kNN, simulate, score).

Per input and tool: the cells called, planted/sorted doublets caught and singlets flagged at
the tool's own threshold, singlets flagged at the other tool's recall (the highest threshold
that catches as many doublets), the cells of rare real types called (planted and Baron: types
of 5 cells or more, under 1 % of the cells), the AUROC of the scores; and the agreement of the
two (Jaccard of the called sets, Spearman of the scores).

    python3.12 -m venv /work/peer-scrublet && /work/peer-scrublet/bin/pip install scrublet
    python benchmarks/bench_doublets.py --peer-python /work/peer-scrublet/bin/python

Tables go to stdout, the numbers to ``--out``/doublets.json. Never run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp
import scurate
from scipy.stats import rankdata, spearmanr
from scurate._data.example import example_sources

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
CELLBENCH = DATA / "cellbench_lung_celllines" / "cellbench_lung_celllines.h5ad"
BARON = DATA / "baron_mouse_pancreas" / "baron_mouse_pancreas.h5ad"
CASES = ("planted", "cellbench", "baron", "example")
ONE_THREAD = {
    k: "1"
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
}
SCURATE_STEPS = ("embed", "neighbours", "doublets")
RARE_MIN, RARE_SHARE = 5, 0.01  # a rare real type: at least 5 cells, under 1 % of them


class BenchError(Exception):
    """A bad option or input: one line, exit 1."""


@dataclass
class Case:
    name: str
    paths: list[Path]
    batch: str | None = None  # obs column: Scrublet runs once per value too
    truth: dict[Path, np.ndarray] = field(default_factory=dict)  # 1 doublet, 0 singlet, -1 ?
    low_depth: dict[Path, np.ndarray] = field(default_factory=dict)
    truth_name: str = ""
    rare: np.ndarray | None = None  # rows (over all paths) of rare real types: see rare_rows


def make_case(name: str, folder: Path) -> Case:
    if name == "planted":
        sys.path.insert(0, str(HERE.parent / "tests"))
        from qc_corpus import write_planted  # the corpus tests/test_qc.py plants

        path, kinds = write_planted(folder, seed=0)
        n = ad.read_h5ad(path, backed="r").n_obs
        truth, low = np.zeros(n, np.int8), np.zeros(n, bool)
        truth[kinds["doublet"]], low[kinds["low_depth"]] = 1, True
        labels = ad.read_h5ad(path, backed="r").obs["cell_type"].astype(str).to_numpy()
        labels = np.where(truth == 1, "", labels)  # the planted doublets are no type
        return Case(name, [path], None, {path: truth}, {path: low}, "planted", rare_rows(labels))
    if name == "example":
        paths = example_sources()
        truth = {p: np.zeros(ad.read_h5ad(p, backed="r").n_obs, np.int8) for p in paths}
        return Case(name, paths, None, truth, {}, "none planted")
    path = CELLBENCH if name == "cellbench" else BARON
    if not path.exists():
        msg = f"{path}: not found (the real datasets of ../shared/data; --cases leaves one out)"
        raise BenchError(msg)
    if name == "baron":
        labels = ad.read_h5ad(path, backed="r").obs["assigned_cluster"].astype(str).to_numpy()
        return Case(name, [path], "source_file", rare=rare_rows(labels))
    wells = ad.read_h5ad(path, backed="r").obs["cell_number"].to_numpy(dtype=float)
    truth = np.where(wells == 2, 1, np.where(wells == 1, 0, -1)).astype(np.int8)
    return Case(name, [path], "source_file", {path: truth}, {}, "sorted 2 cells")


def rare_rows(labels: np.ndarray) -> np.ndarray:
    """Rows of the rare real types: 5 cells or more, under 1 % of the cells (the planted
    corpus's pDC and ILC, Baron's five types of 6-14 cells). No tool should call them."""
    names, counts = np.unique(labels[labels != ""], return_counts=True)
    rare = names[(counts >= RARE_MIN) & (counts < RARE_SHARE * len(labels))]
    return np.flatnonzero(np.isin(labels, rare))


def check_peer(peer: str) -> str:
    """The peer interpreter's path, or one line saying why it cannot run Scrublet."""
    try:
        done = subprocess.run(
            [
                peer,
                "-c",
                "import scrublet, scipy, numpy; import sys; print(sys.version.split()[0])",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
    except OSError as exc:
        msg = f"--peer-python {peer}: cannot run it ({exc.strerror or exc})"
        raise BenchError(msg) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        msg = f"--peer-python {peer}: cannot import scrublet there ({last})"
        raise BenchError(msg)
    return done.stdout.strip()


def run_scurate(case: Case, repeats: int) -> dict[str, Any]:
    """scurate's scores and calls in the order of ``case.paths`` rows, and its step times."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = scurate.score(case.paths, threads=1)
        runs.append((time.perf_counter() - start, result))
    manifest, report = runs[-1][1].manifest, runs[-1][1].report
    doublets = report["qc_values"]["doublets"]
    if "threshold" not in doublets:
        msg = f"{case.name}: scurate scored no doublet ({doublets.get('not_scored')})"
        raise BenchError(msg)
    scores = np.empty(manifest.height)
    sources, rows = manifest["source"].to_numpy(), manifest["row"].to_numpy().astype(np.int64)
    offsets = offsets_of(case)
    for path, start in offsets.items():
        mine = sources == str(path)
        scores[start + rows[mine]] = manifest["doublet_score"].to_numpy()[mine]
    steps = {
        key: statistics.median(r.report["timings_s"].get(key, 0.0) for _, r in runs)
        for key in SCURATE_STEPS
    }
    return {
        "scores": scores,
        "threshold": float(doublets["threshold"]),
        "seconds_doublets": steps["doublets"],
        "seconds_steps": sum(steps.values()),
        "seconds_total": statistics.median(w for w, _ in runs),
        "info": doublets,
    }


def offsets_of(case: Case) -> dict[Path, int]:
    out, at = {}, 0
    for path in case.paths:
        out[path] = at
        at += ad.read_h5ad(path, backed="r").n_obs
    return out


def export_units(case: Case, folder: Path) -> list[dict[str, Any]]:
    """Each file's counts (and each batch's, where the file has batches) as .npz for the peer."""
    units = []
    offsets = offsets_of(case)
    for k, path in enumerate(case.paths):
        adata = ad.read_h5ad(path)
        counts = sp.csr_matrix(adata.X, dtype=np.float32)
        parts = [("file", f"{case.name}-f{k}", np.arange(adata.n_obs))]
        if case.batch is not None:
            values = adata.obs[case.batch].astype(str).to_numpy()
            for j, value in enumerate(sorted(set(values))):
                parts.append(("batch", f"{case.name}-f{k}-b{j}", np.flatnonzero(values == value)))
        for variant, name, rows in parts:
            sp.save_npz(folder / f"{name}.npz", counts[rows])
            units.append(
                {
                    "name": name,
                    "counts": f"{name}.npz",
                    "variant": variant,
                    "rows": (rows + offsets[path]).tolist(),
                }
            )
    return units


def run_peer(peer: str, units: list[dict[str, Any]], folder: Path, repeats: int) -> dict[str, Any]:
    jobs = {"units": [{"name": u["name"], "counts": u["counts"]} for u in units], "seed": 0}
    jobs["repeats"] = repeats
    (folder / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, **ONE_THREAD}
    done = subprocess.run(
        [peer, str(HERE / "_scrublet_peer.py"), str(folder / "jobs.json")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        msg = f"--peer-python {peer}: Scrublet failed ({last})"
        raise BenchError(msg)
    result: dict[str, Any] = json.loads((folder / "result.json").read_text())
    for unit in units:
        result["units"][unit["name"]]["scores"] = np.load(folder / f"{unit['name']}.scores.npy")
    return result


def assemble(n: int, units: list[dict[str, Any]], peer: dict[str, Any], variant: str) -> Any:
    """Scrublet's scores and calls over the case's rows for one variant (file or batch)."""
    scores, called, seconds, thresholds = np.full(n, np.nan), np.zeros(n, bool), 0.0, []
    for unit in units:
        if unit["variant"] != variant:
            continue
        got = peer["units"][unit["name"]]
        rows = np.asarray(unit["rows"])
        scores[rows] = got["scores"]
        thresholds.append(got["threshold"])
        if got["threshold"] is not None:
            called[rows] = got["scores"] > got["threshold"]
        seconds += got["seconds"]
    return {"scores": scores, "called": called, "thresholds": thresholds, "seconds": seconds}


def auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    pos, neg = scores[truth == 1], scores[truth == 0]
    ranks = rankdata(np.r_[pos, neg])
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def flagged_at(scores: np.ndarray, truth: np.ndarray, caught: int) -> tuple[int, int]:
    """Singlets flagged (and doublets caught) at the highest threshold catching ``caught``."""
    pos = np.sort(scores[truth == 1])[::-1]
    if caught <= 0:
        return 0, 0
    cut = pos[min(caught, len(pos)) - 1]
    return int((scores[truth == 0] >= cut).sum()), int((scores[truth == 1] >= cut).sum())


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else 1.0


def measure(case: Case, ours: dict[str, Any], peers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    truth = (
        np.concatenate([case.truth.get(p, np.full(0, -1)) for p in case.paths])
        if case.truth
        else None
    )
    low = np.concatenate([case.low_depth[p] for p in case.paths]) if case.low_depth else None
    ours["called"] = ours["scores"] > ours["threshold"]
    tools = {"scurate": ours} | {f"Scrublet per {v}": r for v, r in peers.items()}
    reference = "Scrublet per batch" if "batch" in peers else "Scrublet per file"
    out: dict[str, Any] = {"n_cells": len(ours["scores"]), "truth": case.truth_name, "tools": {}}
    for name, tool in tools.items():
        called = tool["called"]
        row: dict[str, Any] = {"called": int(called.sum()), "rate": float(called.mean())}
        if case.rare is not None:
            row["rare_cells"] = len(case.rare)
            row["rare_called"] = int(called[case.rare].sum())
        if truth is not None and (truth == 0).any():
            row["singlets"] = int((truth == 0).sum())
            row["singlets_flagged"] = int(called[truth == 0].sum())
            if low is not None:
                row["low_depth_flagged"] = int(called[low].sum())
        if truth is not None and (truth == 1).any():
            row["doublets"] = int((truth == 1).sum())
            row["caught"] = int(called[truth == 1].sum())
            row["auroc"] = auroc(tool["scores"], truth)
            other = tools["scurate"] if name != "scurate" else tools[reference]
            caught = int(other["called"][truth == 1].sum())
            fp, got = flagged_at(tool["scores"], truth, caught)
            row["at_other_recall"] = {"vs": "scurate" if name != "scurate" else reference}
            row["at_other_recall"] |= {"target": caught, "caught": got, "singlets_flagged": fp}
        for key in ("seconds", "seconds_doublets", "seconds_steps", "seconds_total"):
            if key in tool:
                row[key] = round(float(tool[key]), 3)
        row["threshold"] = tool.get("threshold", tool.get("thresholds"))
        if name != "scurate":
            rho = spearmanr(ours["scores"], tool["scores"]).statistic
            row["vs_scurate"] = {"jaccard": jaccard(ours["called"], called), "spearman": float(rho)}
        out["tools"][name] = row
    return out


def fraction(n: int, of: int) -> str:
    return f"{n} / {of} ({100 * n / of:.1f} %)"


def tables(results: dict[str, Any]) -> str:
    lines = [
        "| input | cells | tool | called | doublets caught | singlets flagged |"
        " singlets flagged at the other's recall | rare-type cells called | AUROC | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, res in results.items():
        for name, row in res["tools"].items():
            caught = fraction(row["caught"], row["doublets"]) if "doublets" in row else "–"
            flagged = (
                fraction(row["singlets_flagged"], row["singlets"]) if "singlets" in row else "–"
            )
            if "low_depth_flagged" in row:
                flagged += f", {row['low_depth_flagged']} low-depth"
            at = row.get("at_other_recall")
            matched = f"{at['singlets_flagged']} ({at['caught']} caught)" if at else "–"
            auc = f"{row['auroc']:.3f}" if "auroc" in row else "–"
            rare = f"{row['rare_called']} / {row['rare_cells']}" if "rare_cells" in row else "–"
            secs = (
                f"{row['seconds_doublets']:.2f} ({row['seconds_steps']:.2f} with PCA and kNN)"
                if "seconds_doublets" in row
                else f"{row['seconds']:.2f}"
            )
            lines.append(
                f"| {case} | {res['n_cells']} | {name} | {fraction(row['called'], res['n_cells'])}"
                f" | {caught} | {flagged} | {matched} | {rare} | {auc} | {secs} |"
            )
    lines += [
        "",
        "| input | Scrublet run | Jaccard of calls | Spearman of scores |",
        "|---|---|---|---|",
    ]
    for case, res in results.items():
        for name, row in res["tools"].items():
            if "vs_scurate" in row:
                v = row["vs_scurate"]
                lines.append(f"| {case} | {name} | {v['jaccard']:.2f} | {v['spearman']:.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-python", required=True, help="a Python with scrublet installed")
    parser.add_argument("--cases", default=",".join(CASES), help=f"some of {','.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side")
    parser.add_argument("--out", type=Path, default=Path("bench-out/doublets"))
    args = parser.parse_args(argv)
    try:
        chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in CASES]
        if unknown or not chosen:
            what = f"unknown {', '.join(unknown)}" if unknown else "none given"
            msg = f"--cases {args.cases}: {what} (choose from {', '.join(CASES)})"
            raise BenchError(msg)
        if args.repeats < 1:
            raise BenchError(f"--repeats {args.repeats}: expected a whole number >= 1")
        peer_version = check_peer(args.peer_python)
        results = run(chosen, args.peer_python, args.repeats)
    except BenchError as err:
        print(f"bench_doublets: error: {err}", file=sys.stderr)
        return 1
    print(tables(results))
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "peer_python": peer_version,
        "python": platform.python_version(),
        "load": os.getloadavg(),
    }
    (args.out / "doublets.json").write_text(json.dumps({"meta": meta, "cases": results}, indent=1))
    load = os.getloadavg()[0]
    print(f"\nload average at the end: {load:.2f}; numbers in {args.out / 'doublets.json'}")
    return 0


def run(chosen: list[str], peer: str, repeats: int) -> dict[str, Any]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-doublets-") as tmp:
        for name in chosen:
            folder = Path(tmp) / name
            folder.mkdir()
            case = make_case(name, folder)
            ours = run_scurate(case, repeats)
            units = export_units(case, folder)
            peer_result = run_peer(peer, units, folder, repeats)
            n = len(ours["scores"])
            variants = sorted({u["variant"] for u in units})
            peers = {v: assemble(n, units, peer_result, v) for v in variants}
            results[name] = measure(case, ours, peers)
            results[name]["scrublet_import_s"] = peer_result["import_s"]
            results[name]["scurate_info"] = ours["info"]
    return results


if __name__ == "__main__":
    raise SystemExit(main())

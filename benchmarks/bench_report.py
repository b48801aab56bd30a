"""Benchmark report.html at 1M cells: its size and how fast headless Chromium opens it.

A seeded synthetic run in the shape of a real one: a 1,000,000-row manifest (8 datasets, 60
cell types, 20 tissues, 5 assays, 400 donors, 3 % exact copies of random cells, 4 % of cells
in near-duplicate groups, density, a 50,000-cell selection with ranks and weights) and its
report.json (datasets, duplicates, overlap, coverage per stratum as the engine counts it, a
covering-radius curve, timings), plus a PCA-like embedding (1M x 32) passed as
``embedding=``. The page is rendered once (seconds given), then opened ``--repeats`` times in
headless Chromium (medians): the load time is the page's own navigation timing
(navigationStart to loadEventEnd), and the wall time of the whole browser process is given
beside it.

Usage::

    python benchmarks/bench_report.py                  # 1M cells
    python benchmarks/bench_report.py --cells 100000

Never run in CI.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from html import unescape
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scurate._compute.scoring import dataset_overlap
from scurate._data import atomic
from scurate._data.manifest import conform, write_manifest
from scurate._engine import coverage as cov
from scurate._engine import report as rp
from scurate._engine.pages import render_report

from _data import pca_like

PROBE = (
    "<script>addEventListener('load',()=>setTimeout(()=>{const t=performance.timing;"
    "const p=document.createElement('pre');p.id='probe';p.textContent=JSON.stringify("
    "{load:t.loadEventEnd-t.navigationStart,svgs:document.querySelectorAll('svg').length});"
    "document.body.appendChild(p)},0))</script>"
)


def synthesize(folder: Path, n: int, seed: int) -> np.ndarray:
    """Write a manifest and report.json of ``n`` cells into ``folder``; return the embedding."""
    rng = np.random.default_rng(seed)
    x, types = pca_like(rng, n, dim=32, n_types=60)
    datasets = np.array([f"dataset_{i}" for i in range(8)])[rng.integers(0, 8, n)]
    ids = np.char.add(np.char.add(datasets.astype(str), "/c"), np.arange(n).astype(str))
    exact = np.full(n, -1, dtype=np.int64)
    copies = rng.choice(n, int(0.03 * n), replace=False)
    exact[copies] = rng.integers(0, n, len(copies))
    exact[exact == np.arange(n)] = -1
    near = np.full(n, -1, dtype=np.int64)
    grouped = rng.choice(n, int(0.04 * n), replace=False)
    near[grouped] = np.sort(grouped)[rng.integers(0, len(grouped) // 2, len(grouped))]
    budget = 50_000
    keep = np.flatnonzero(exact < 0)
    order = rng.permutation(keep)[:budget]
    rank = np.full(n, -1, dtype=np.int64)
    rank[order] = np.arange(budget)
    manifest = conform(
        pl.DataFrame(
            {
                "cell_id": ids,
                "dataset_id": datasets,
                "source": np.char.add("/data/", np.char.add(datasets.astype(str), ".h5ad")),
                "row": np.arange(n, dtype=np.uint32),
                "cell_type": np.char.add("cell type ", types.astype(str)),
                "tissue": np.char.add("tissue ", (types % 20).astype(str)),
                "assay": np.array(["10x 3' v2", "10x 3' v3", "10x 5' v1", "Smart-seq2", "sci-RNA"])[
                    rng.integers(0, 5, n)
                ],
                "donor_id": np.char.add("donor ", rng.integers(0, 400, n).astype(str)),
                "exact_dup_of": ids[np.maximum(exact, 0)],
                "near_dup_group": pl.Series(near).replace(-1, None),
                "density": rng.lognormal(0, 0.5, n).astype(np.float32),
                "selected": rank >= 0,
                "selection_rank": pl.Series(rank).replace(-1, None),
                "weight": np.where(rank >= 0, n / budget, np.nan).astype(np.float32),
                "is_copy": exact >= 0,
            }
        ).with_columns(
            pl.col("weight").fill_nan(None),
            pl.when("is_copy").then("exact_dup_of").alias("exact_dup_of"),
            pl.when("selected").then(pl.lit("kcenter")).alias("policy"),
        )
    )
    radii = 8.0 / np.sqrt(np.arange(1, budget + 1))
    report = {
        "report_version": rp.REPORT_VERSION,
        "parameters": {
            "sources": [f"/data/dataset_{i}.h5ad" for i in range(8)],
            "budget": budget,
            "policy": "kcenter",
            "seed": seed,
        },
        "n_selected": budget,
        "n_pool": n,
        "datasets": rp.per_dataset(manifest),
        "duplicates": {
            "exact_copies": int((exact >= 0).sum()),
            "in_near_dup_groups": int((near >= 0).sum()),
        },
        "overlap": dataset_overlap(datasets, exact, near),
        "embedding": {"method": "obsm", "obsm_key": "X_pca", "n_dims": 32},
        "covering_radius": float(radii[-1]),
        "covering_radius_curve": rp.radius_curve(radii.tolist()),
        "coverage": cov.coverage(manifest),
        "timings_s": {"open": 12.0, "embed": 30.0, "score": 40.0, "select": 20.0},
        "work_dir": {"entry": None, "reused": False},
    }
    write_manifest(manifest, folder / "manifest.parquet")
    atomic.write_json(report, folder / "report.json")
    return x


def open_in_chromium(chromium: str, page: Path, tmp: Path) -> tuple[float, float]:
    """(load ms by the page's navigation timing, wall seconds of the browser process)."""
    probed = tmp / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    start = time.perf_counter()
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    wall = time.perf_counter() - start
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    if not found:
        raise SystemExit("bench_report: the page did not finish loading")
    seen: dict[str, Any] = json.loads(unescape(found.group(1)))
    return float(seen["load"]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("bench_report: no chromium on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        embedding = synthesize(folder, args.cells, args.seed)
        print(f"synthesized {args.cells:,} cells in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        html = render_report(folder, embedding=embedding)
        render_s = time.perf_counter() - start
        page = folder / "report.html"
        atomic.write_text(html, page)
        opened = [open_in_chromium(chromium, page, folder) for _ in range(args.repeats)]
    size = len(html.encode())
    result = {
        "cells": args.cells,
        "page_bytes": size,
        "page_mb": round(size / 1e6, 3),
        "render_s": round(render_s, 2),
        "load_ms_median": statistics.median(o[0] for o in opened),
        "browser_wall_s_median": round(statistics.median(o[1] for o in opened), 2),
        "load_ms_all": [o[0] for o in opened],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Benchmark minibatch throughput from a selection: CellLoader against anndata backed mode.

Data (written once to ``--cache``, default ``/tmp/scurate-bench/loader``): ``--files`` h5ad
files (default 4) of ``--cells`` cells (100,000) x ``--genes`` genes (2,000) of Poisson
counts, CSR float32, ~7.5 % nonzero (about 120 MB a file); and a selection of ``--select``
cells (200,000) spread over all files in a random priority order, as a ``select`` output
folder (its manifest written directly: the loader reads only the manifest, and running the
selection itself on 400k cells is not what is timed here).

Timed per round, tools in a rotating order, each reading the first ``--read`` cells (100,000)
of one epoch in minibatches of ``--batch-size`` (256), shuffled, cells per second of wall clock
(construction excluded, and reported apart):

- ``CellLoader <sampling>``: ``CellLoader(sel, batch_size=256, seed=round, sampling=...)`` for
  uniform, weight and balanced:cell_type, scipy CSR batches, the next buffer read ahead in a
  thread; ``CellLoader uniform, no read-ahead`` shows what the thread adds;
- ``TorchDataset <sampling>, N workers``: dense float32 tensors through a torch
  ``DataLoader(batch_size=None, num_workers=N)`` for N = 0 and 2 (worker start included);
  ``CSR tensors``: the same with ``layout="csr"`` (a tenth of the bytes between processes);
- ``annbatch (collection)``: annbatch's ``Loader(batch_size=256, chunk_size=64,
  preload_nchunks=16, shuffle=True)`` on the annbatch collection of the same first ``--read``
  cells of the priority order, written by ``scurate materialize --format annbatch``
  (annbatch's own writer). annbatch needs Python >= 3.12: give ``--annbatch-python`` an
  interpreter that has scurate, annbatch (and zarrs, which annbatch recommends); it writes the
  collection once and runs each timed read as a child process that reports its own timing;
- ``anndata backed, same batches``: the CellLoader's batches (the same cells in the same
  batches), read with ``anndata.read_h5ad(f, backed="r").X[rows]`` per file (rows sorted, as
  h5py needs), stacked and put back in batch order: what a user writes today;
- ``anndata backed, random batches``: the same, on batches of a uniform random permutation of
  the selected cells (a plain random sampler: no block locality);
- ``materialize h5ad`` / ``zarr``: ``scurate.materialize`` of the first ``--read`` cells of
  the priority order into shards of 25,000 cells.

Medians over ``--repeats`` rounds (3), with the ratio to ``annbatch (collection)`` and to
``anndata backed, same batches`` of the same run, and the load average at the start and end.
The table goes to stdout and the raw numbers to ``bench-out/bench_loader.json``.

Usage::

    python benchmarks/bench_loader.py
    python benchmarks/bench_loader.py --quick          # 2 x 20k cells, 3 rounds
    python benchmarks/bench_loader.py --annbatch-python /path/to/py312/bin/python

Never run in CI.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import polars as pl
import scipy.sparse as sp
import scurate
from scurate._data import manifest as mf
from scurate._engine.outputs import digest
from scurate.loader import CellLoader

N_TYPES = 20


def write_files(cache: Path, files: int, cells: int, genes: int, seed: int) -> list[Path]:
    """Poisson counts with gamma gene means (~7.5 % nonzero), one shared gene list."""
    paths = [cache / f"part{i}.h5ad" for i in range(files)]
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(seed)
    means = rng.gamma(0.25, 0.31, size=genes)
    var = pd_index([f"ENSG{i:011d}" for i in range(genes)])
    for path in paths:
        parts = [
            sp.csr_matrix(rng.poisson(means, size=(min(5000, cells - s), genes)).astype(np.float32))
            for s in range(0, cells, 5000)
        ]
        adata = ad.AnnData(sp.vstack(parts, format="csr"))
        adata.var_names = var
        adata.obs_names = pd_index([f"c{r}" for r in range(cells)])
        adata.obs["cell_type"] = np.asarray([f"type{t}" for t in rng.integers(N_TYPES, size=cells)])
        adata.obs["cell_type"] = adata.obs["cell_type"].astype("category")
        tmp = path.with_name(f".{path.name}.partial")
        adata.write_h5ad(tmp)
        tmp.rename(path)
        print(f"wrote {path}", file=sys.stderr)
    return paths


def pd_index(values: list[str]) -> Any:
    import pandas as pd

    return pd.Index(values)


def write_selection(cache: Path, paths: list[Path], cells: int, select: int, seed: int) -> Path:
    """A select output folder: ``select`` cells chosen at random, in a random priority order."""
    out = cache / f"selection-{select}"
    if (out / "report.json").exists():
        return out
    rng = np.random.default_rng(seed + 1)
    n = len(paths) * cells
    chosen = rng.choice(n, size=select, replace=False)
    rank = np.full(n, -1, dtype=np.int64)
    rank[chosen] = np.arange(select)
    file_of, row = np.divmod(np.arange(n), cells)
    stems = np.array([p.stem for p in paths], dtype=object)
    types = np.concatenate(
        [ad.read_h5ad(p, backed="r").obs["cell_type"].astype(str).to_numpy() for p in paths]
    )
    frame = pl.DataFrame(
        {
            "cell_id": [f"{stems[f]}/c{r}" for f, r in zip(file_of, row, strict=True)],
            "dataset_id": stems[file_of],
            "source": np.array([str(p.resolve()) for p in paths], dtype=object)[file_of],
            "row": row,
            "cell_type": types,
            "rank": rank,
            "w": rng.uniform(1, 4, n),
        }
    ).with_columns(
        selected=pl.col("rank") >= 0,
        selection_rank=pl.when(pl.col("rank") >= 0).then(pl.col("rank")),
        weight=pl.when(pl.col("rank") >= 0).then(pl.col("w")),
    )
    out.mkdir(parents=True, exist_ok=True)
    mf.write_manifest(frame, out / "manifest.parquet")
    # the report.json a loader checks the manifest against, as select writes it
    record = {"parameters": {}, "written": {"manifest.parquet": digest(out / "manifest.parquet")}}
    (out / "report.json").write_text(json.dumps(record))
    return out


class Backed:
    """anndata backed mode: one backed AnnData per file, rows read with ``X[sorted rows]``."""

    def __init__(self, paths: list[Path]) -> None:
        self.adatas = {p.stem: ad.read_h5ad(p, backed="r") for p in paths}

    def read(self, dataset: np.ndarray, rows: np.ndarray) -> sp.csr_matrix:
        pieces, where = [], []
        for d in np.unique(dataset):
            at = np.flatnonzero(dataset == d)
            order = np.argsort(rows[at])
            pieces.append(sp.csr_matrix(self.adatas[d].X[rows[at][order]]))
            where.append(at[order])
        x = sp.vstack(pieces, format="csr")
        return x[np.argsort(np.concatenate(where))]


def _batches_of(loader: CellLoader, limit: int) -> list[np.ndarray]:
    order = loader.positions()[:limit]
    return [order[i : i + loader.batch_size] for i in range(0, len(order), loader.batch_size)]


def run_cellloader(
    sel: Path, args: argparse.Namespace, r: int, sampling: str, *, read_ahead: bool = True
) -> tuple[int, float]:
    t0 = time.perf_counter()
    loader = CellLoader(
        sel, batch_size=args.batch_size, seed=r, sampling=sampling, read_ahead=read_ahead
    )
    init = time.perf_counter() - t0
    n = 0
    for batch in loader:
        n += batch.X.shape[0]
        if n >= args.read:
            break
    return n, init


def _ids_to_rows(loader: CellLoader) -> tuple[np.ndarray, np.ndarray]:
    ids = loader.cell_ids.astype(str)
    parts = np.char.partition(ids, "/")
    return parts[:, 0], np.char.lstrip(parts[:, 2], "c").astype(np.int64)


def run_backed(
    sel: Path, paths: list[Path], args: argparse.Namespace, r: int, *, random: bool
) -> tuple[int, float]:
    t0 = time.perf_counter()
    backed = Backed(paths)
    loader = CellLoader(sel, batch_size=args.batch_size, seed=r)  # only to name the batches
    dataset, rows = _ids_to_rows(loader)
    if random:
        order = np.random.default_rng(r).permutation(len(rows))[: args.read]
        batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    else:
        batches = _batches_of(loader, args.read)
    init = time.perf_counter() - t0
    n = 0
    for b in batches:
        n += backed.read(dataset[b], rows[b]).shape[0]
    return n, init


def run_torch(
    sel: Path, args: argparse.Namespace, r: int, workers: int, sampling: str, layout: str = "dense"
) -> tuple[int, float]:
    import warnings

    from scurate.loader import TorchDataset
    from torch.utils.data import DataLoader

    warnings.filterwarnings("ignore", "Sparse")  # torch's: CSR is "beta"
    t0 = time.perf_counter()
    dataset = TorchDataset(
        sel, batch_size=args.batch_size, seed=r, sampling=sampling, layout=layout
    )
    init = time.perf_counter() - t0
    n = 0
    for batch in DataLoader(dataset, batch_size=None, num_workers=workers):
        n += int(batch["X"].shape[0])
        if n >= args.read:
            break
    return n, init


def run_materialize(sel: Path, args: argparse.Namespace, fmt: str) -> tuple[int, float]:
    out = Path(args.cache) / f"shards-{fmt}"
    shutil.rmtree(out, ignore_errors=True)
    result = scurate.materialize(sel, out, format=fmt, shard_size=25_000, budget=args.read)
    return result.n_cells, 0.0


ANNBATCH = textwrap.dedent(
    """
    import json, sys, time, warnings
    warnings.simplefilter("ignore")
    import zarr
    from annbatch import DatasetCollection, Loader
    try:  # annbatch recommends the zarrs codec pipeline on a local file system
        import zarrs  # noqa: F401
        zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})
    except ImportError:
        pass
    import numpy as np
    collection, n_read, batch_size, seed = sys.argv[1], *map(int, sys.argv[2:5])
    t0 = time.perf_counter()
    loader = Loader(batch_size=batch_size, chunk_size=64, preload_nchunks=16, shuffle=True,
                    rng=np.random.default_rng(seed), preload_to_gpu=False)
    loader.use_collection(DatasetCollection(collection, mode="r"))
    init = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 0
    for batch in loader:
        n += batch["X"].shape[0]
        if n >= n_read:
            break
    print(json.dumps({"cells": n, "seconds": time.perf_counter() - t1, "init": init}))
    """
)


def write_annbatch(sel: Path, args: argparse.Namespace) -> Path:
    """The annbatch collection of the first ``--read`` cells, written once by the scurate of
    ``--annbatch-python`` (annbatch needs Python >= 3.12)."""
    out = Path(args.cache) / f"annbatch-{args.read}"
    if not (out / "index.json").exists():
        scurate_cli = Path(args.annbatch_python).parent / "scurate"
        cmd = [str(scurate_cli), "materialize", str(sel), "--format", "annbatch"]
        cmd += ["--budget", str(args.read), "-o", str(out), "--overwrite"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"materialize --format annbatch failed: {tail[0]}")
        print(f"annbatch collection written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return out / "collection.zarr"


def run_annbatch(args: argparse.Namespace, r: int) -> tuple[int, float, float]:
    collection = Path(args.cache) / f"annbatch-{args.read}" / "collection.zarr"
    cmd = [
        args.annbatch_python,
        "-c",
        ANNBATCH,
        str(collection),
        str(args.read),
        str(args.batch_size),
        str(r),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1200)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"annbatch failed: {tail[0]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return int(out["cells"]), float(out["seconds"]), float(out["init"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--cells", type=int, default=100_000, help="cells per file")
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--select", type=int, default=200_000)
    parser.add_argument("--read", type=int, default=100_000, help="cells read per timed run")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", default="/tmp/scurate-bench/loader")
    parser.add_argument("--annbatch-python", default=None, help="a Python that has annbatch")
    parser.add_argument("--quick", action="store_true", help="2 x 20k cells, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.files, args.cells, args.select, args.read, args.repeats = 2, 20_000, 20_000, 20_000, 3
        args.cache = str(Path(args.cache) / "quick")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    paths = write_files(cache, args.files, args.cells, args.genes, seed=0)
    sel = write_selection(cache, paths, args.cells, args.select, seed=0)

    load_start = os.getloadavg()
    samplings = ("uniform", "weight", "balanced:cell_type")
    tools: dict[str, Callable[[int], tuple[int, float]]] = {}
    for sampling in samplings:
        tools[f"CellLoader {sampling}"] = functools.partial(
            lambda r, s: run_cellloader(sel, args, r, s), s=sampling
        )
    tools["CellLoader uniform, no read-ahead"] = lambda r: run_cellloader(
        sel, args, r, "uniform", read_ahead=False
    )
    for sampling in samplings:
        for workers in (0, 2):
            tools[f"TorchDataset {sampling}, {workers} workers"] = functools.partial(
                lambda r, s, w: run_torch(sel, args, r, w, s), s=sampling, w=workers
            )
    for workers in (0, 2):
        tools[f"TorchDataset uniform, CSR tensors, {workers} workers"] = functools.partial(
            lambda r, w: run_torch(sel, args, r, w, "uniform", "csr"), w=workers
        )
    tools["anndata backed, same batches"] = lambda r: run_backed(sel, paths, args, r, random=False)
    tools["anndata backed, random batches"] = lambda r: run_backed(sel, paths, args, r, random=True)
    tools["materialize h5ad"] = lambda r: run_materialize(sel, args, "h5ad")
    tools["materialize zarr"] = lambda r: run_materialize(sel, args, "zarr")
    skipped: dict[str, str] = {}
    try:
        import torch  # noqa: F401
    except ImportError:
        skipped["TorchDataset"] = "torch is not installed"
        tools = {k: v for k, v in tools.items() if not k.startswith("TorchDataset")}
    if args.annbatch_python:
        try:
            write_annbatch(sel, args)
        except RuntimeError as exc:
            skipped["annbatch"] = str(exc)
            args.annbatch_python = None
    else:
        skipped["annbatch"] = "needs Python >= 3.12 (give --annbatch-python)"

    rates: dict[str, list[float]] = {k: [] for k in tools}
    inits: dict[str, list[float]] = {k: [] for k in tools}
    if args.annbatch_python:
        rates["annbatch (collection)"], inits["annbatch (collection)"] = [], []
    names = list(rates)
    for r in range(args.repeats):
        turn = names[r % len(names) :] + names[: r % len(names)]
        for name in turn:
            try:
                if name.startswith("annbatch"):
                    n, seconds, init = run_annbatch(args, r)
                else:
                    t0 = time.perf_counter()
                    n, init = tools[name](r)
                    seconds = time.perf_counter() - t0 - init
            except Exception as exc:  # noqa: BLE001 - a peer that fails is reported, not fatal
                skipped[name] = f"{type(exc).__name__}: {exc}"
                continue
            rates[name].append(n / seconds)
            inits[name].append(init)
            print(
                f"round {r} {name}: {n / seconds:,.0f} cells/s (init {init:.2f} s)", file=sys.stderr
            )
    load_end = os.getloadavg()
    backed = statistics.median(rates["anndata backed, same batches"] or [float("nan")])
    peer = statistics.median(rates.get("annbatch (collection)") or [float("nan")])
    print(
        f"\n{args.files} files x {args.cells:,} cells x {args.genes:,} genes; {args.select:,} "
        f"selected; {args.read:,} cells read per run in batches of {args.batch_size}; "
        f"{args.repeats} rounds; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cpus, load (1 min) {load_start[0]:.1f} at start, "
        f"{load_end[0]:.1f} at end\n"
    )
    print("| tool | median cells/s | runs | x annbatch | x anndata backed | init s |")
    print("|---|---|---|---|---|---|")
    for name in names:
        if not rates[name]:
            continue
        med = statistics.median(rates[name])
        runs = ", ".join(f"{v / 1000:.1f}k" for v in rates[name])
        print(
            f"| {name} | {med:,.0f} | {runs} | {med / peer:.2f} | {med / backed:.2f} | "
            f"{statistics.median(inits[name]):.2f} |"
        )
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    bench_out = Path("bench-out")
    bench_out.mkdir(exist_ok=True)
    (bench_out / "bench_loader.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "rates": rates,
                "inits": inits,
                "skipped": skipped,
                "load": [load_start, load_end],
            }
        )
    )


if __name__ == "__main__":
    main()

"""End to end: ``scurate select`` against the scanpy route a user would take, on one corpus.

Data (``--data``, generated once per parameter set and reused while its ``params.json``, written
last, matches; see :func:`write_counts` and :func:`write_obsm`):

- ``--mode counts`` (default): ``--cells`` cells of raw counts over ``--files`` h5ad files (CSR,
  float32, ``--genes`` human genes named by Ensembl id or symbol, about ``--nnz`` nonzeros per
  cell), ``--types`` cell types in ``--lineages`` lineages, each lineage and type with its own
  expression program (``--rare`` types under 0.5 %), obs ``cell_type`` and ``donor``, and
  ``--copies`` cells planted again as exact copies in later files. Each file is generated and
  written in chunks, so memory stays bounded.
- ``--mode obsm``: ``--cells`` cells with a 50-d float32 embedding in ``obsm['X_emb']`` and no X,
  over ``--files`` files (up to 10,000,000 cells: 10 files of 1M), a mixture of ``--types``
  Gaussian types (``_data.pca_like``'s shape), written in chunks.

Runs, each a fresh process timed for wall time, CPU time and peak RSS (``/usr/bin/time``, else a
wrapper process that reads ``getrusage(RUSAGE_CHILDREN)``), ``--repeats`` rounds whose order
alternates, medians reported, on a warm page cache:

- counts mode
    - ``scurate``: ``scurate select DATA --budget B -o OUT --no-cache`` (the default policy,
      with exact and near duplicates, density, coverage and weights), with report.json's
      ``timings_s``;
    - ``scurate, fill work dir`` then ``scurate, rerun from it``: the same select keeping a work
      dir, then ``--budget 2B --policy random`` (``--rerun-policy``) reading it back;
    - ``scanpy route``: in a second interpreter (``--peer-python``, a venv with scanpy and
      geosketch; scanpy is not a dependency of scurate): ``anndata.read_h5ad`` each file,
      ``anndata.concat``, ``sc.pp.normalize_total(target_sum=1e4)``, ``sc.pp.log1p``,
      ``sc.pp.highly_variable_genes(flavor="seurat", n_top_genes=2000)``, ``sc.pp.pca(n_comps=50)``
      (on the variable genes), ``sc.pp.sample(n=B)``; each step timed inside the process;
    - ``geosketch``: ``geosketch.gs(X_pca, B)`` on that route's PCA, in its own process, the
      sketch step timed alone, capped by ``--geosketch-timeout`` (reported as ">T s"); only in the
      first ``--geosketch-rounds`` rounds (it is the slow one).
- obsm mode
    - ``scurate``: ``scurate select DATA --obsm-key X_emb --budget B -o OUT --no-cache``;
    - ``random sample``: read each file's ``obsm['X_emb']`` with ``anndata.read_h5ad``,
      concatenate, ``rng.choice(n, B)``;
    - ``geosketch``: the same read, then ``geosketch.gs`` (sketch step timed alone, capped).

It prints the machine (CPU model, cores, memory, load average before and after), one markdown
table (median wall s, CPU s, peak RSS GB, the ratio scurate / run per round, medians), scurate's
stage timings and the scanpy route's steps; the raw numbers go to ``OUT/bench_e2e.json``
(``--out``, default ``bench-out/e2e``; ``bench_e2e.partial.json`` is rewritten after every run,
and each run's stdout/stderr stay in ``OUT/logs``). A peer that fails is recorded as failed and
the rounds go on; a failing ``scurate`` stops the benchmark.

Usage::

    python3.12 -m venv /tmp/peer && /tmp/peer/bin/pip install 'scanpy==1.12.*' geosketch
    .venv/bin/python benchmarks/bench_e2e.py --peer-python /tmp/peer/bin/python      # 1M cells
    .venv/bin/python benchmarks/bench_e2e.py --peer-python /tmp/peer/bin/python \\
        --cells 50000 --files 2 --budget 2000 --repeats 1                           # a smoke run
    .venv/bin/python benchmarks/bench_e2e.py --peer-python /tmp/peer/bin/python \\
        --mode obsm --cells 10000000 --files 10

Run it with the project's venv (it calls the ``scurate`` installed beside its python, or
``--scurate``). The peer children import only numpy, anndata, scanpy and geosketch. Never run in
CI.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

GENERATOR_VERSION = 1  # bump when the generated data change for the same parameters
CHUNK = 4096  # cells generated and written at a time
EMB_DIM = 50
TIME = Path("/usr/bin/time")
GENE_TABLE = Path(__file__).resolve().parents[1] / "scurate" / "data" / "gene_ids" / "human.tsv.gz"

# Runs /usr/bin/time's job where it is missing: the child's wall, CPU and peak RSS (this fresh
# process has no other children, so RUSAGE_CHILDREN is the child's own maximum).
WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - start
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    f.write(f"{wall:.2f} {ru.ru_utime:.2f} {ru.ru_stime:.2f} {ru.ru_maxrss}\\n")
sys.exit(rc)
"""


# ------------------------------------------------------------------------------------------
# Data


def gene_names(n: int, kind: str) -> tuple[list[str], dict[str, list[str]]]:
    """``n`` human genes of the shipped GENCODE table (ids whose symbol is unique) as var_names
    (``kind``: "ensembl" or "symbol") and the other kind as a var column."""
    ids: list[str] = []
    symbols: list[str] = []
    seen: dict[str, int] = {}
    with gzip.open(GENE_TABLE, "rt") as f:
        next(f)
        for line in f:
            gene, symbol = line.rstrip("\n").split("\t")
            seen[symbol] = seen.get(symbol, 0) + 1
            ids.append(gene)
            symbols.append(symbol)
    pairs = [(g, s) for g, s in zip(ids, symbols, strict=True) if seen[s] == 1][:n]
    if len(pairs) < n:
        msg = f"--genes {n}: the human table has {len(pairs)} genes with a unique symbol"
        raise SystemExit(msg)
    ens = [g for g, _ in pairs]
    sym = [s for _, s in pairs]
    if kind == "ensembl":
        return ens, {"gene_symbols": sym}
    return sym, {"gene_ids": ens}


def type_proportions(rng: np.random.Generator, types: int, rare: int) -> NDArray[np.float64]:
    """``rare`` types at 0.1-0.4 % of the cells; the others at least 0.5 % each, the rest of
    the cells spread over them by Dirichlet(2)."""
    rare_p = np.linspace(0.001, 0.004, rare) if rare else np.zeros(0)
    left = 1.0 - rare_p.sum() - 0.005 * (types - rare)
    if left < 0:
        msg = f"--types {types}: too many for each common type to hold 0.5 % of the cells"
        raise SystemExit(msg)
    common = 0.005 + rng.dirichlet(np.full(types - rare, 2.0)) * left
    return np.concatenate([common, rare_p])


def read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((folder / "params.json").read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def prepare(folder: Path, params: dict[str, Any]) -> bool:
    """True when ``folder`` already holds the data of ``params``; else empty it for new data."""
    marker = read_marker(folder)
    if marker is not None and marker.get("params") == params:
        return True
    if folder.exists():
        for path in folder.glob("*.h5ad"):
            path.unlink()
        (folder / "params.json").unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    return False


def file_sizes(cells: int, files: int) -> list[int]:
    return [cells // files + (1 if i < cells % files else 0) for i in range(files)]


def write_skeleton(path: Path, obs: Any, var: Any) -> None:
    """An h5ad with obs and var only (no X, empty obsm): X or obsm are added with h5py."""
    import anndata as ad

    ad.AnnData(obs=obs, var=var).write_h5ad(path)


def read_rows(path: Path, rows: NDArray[np.int64], n_vars: int) -> Any:
    """Rows of a CSR X written by :func:`write_counts`, in the order given."""
    import h5py
    import scipy.sparse as sp

    with h5py.File(path, "r") as f:
        x = f["X"]
        indptr = x["indptr"][:]
        parts = []
        for r in rows:
            lo, hi = int(indptr[r]), int(indptr[r + 1])
            parts.append(
                sp.csr_matrix(
                    (x["data"][lo:hi], x["indices"][lo:hi], [0, hi - lo]), shape=(1, n_vars)
                )
            )
    return sp.vstack(parts, format="csr")


def count_chunks(
    rng: np.random.Generator,
    cdf: NDArray[np.float64],
    labels: NDArray[np.int64],
    umis: NDArray[np.int64],
    genes: int,
) -> Iterator[Any]:
    """CSR chunks of counts: each cell's UMIs drawn from its type's gene distribution.

    ``cdf`` holds every type's cumulative distribution shifted by the type's index (type k's in
    [k, k + 1]), so one ``searchsorted`` draws the genes of all the chunk's cells at once;
    ``np.unique`` of (row, gene) then gives the sorted CSR entries and their counts.
    """
    import scipy.sparse as sp

    for start in range(0, len(labels), CHUNK):
        lab = labels[start : start + CHUNK]
        n = len(lab)
        rows = np.repeat(np.arange(n, dtype=np.int64), umis[start : start + CHUNK])
        offset = lab[rows]
        drawn = np.searchsorted(cdf, rng.random(rows.size) + offset, side="right")
        gene = np.minimum(drawn - offset * genes, genes - 1)
        key, count = np.unique(rows * genes + gene, return_counts=True)
        row = key // genes
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=n), out=indptr[1:])
        yield sp.csr_matrix(
            (count.astype(np.float32), (key - row * genes).astype(np.int32), indptr),
            shape=(n, genes),
        )


def type_programs(
    rng: np.random.Generator,
    genes: int,
    types: int,
    lineages: int,
    lineage_genes: int = 300,
    lineage_fold: float = 2.5,
    type_genes: int = 100,
    type_fold: float = 1.2,
) -> NDArray[np.float64]:
    """Each type's distribution over genes, cumulated and shifted by the type's index.

    A long-tailed profile shared by every type, times a strong program of the type's lineage
    (``lineage_genes`` genes up by about ``e**lineage_fold``), times a weaker program of its own
    (``type_genes`` genes, ``e**type_fold``): types of one lineage lie close together, so the
    PCA's variances fall off as they do in real data, not ``types`` equally distant clusters.
    """
    base = rng.lognormal(0.0, 1.5, genes)
    programs = []
    for n_genes, fold, count in (
        (lineage_genes, lineage_fold, lineages),
        (type_genes, type_fold, types),
    ):
        mult = np.ones((count, genes))
        for m in mult:
            markers = rng.choice(genes, size=n_genes, replace=False)
            m[markers] = np.exp(rng.normal(fold, 0.5, n_genes))
        programs.append(mult)
    lineage_of = np.arange(types) % lineages
    w = base * programs[0][lineage_of] * programs[1]
    cdf = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1) + np.arange(types)[:, None]
    return np.asarray(cdf.ravel(), dtype=np.float64)


def write_counts(folder: Path, params: dict[str, Any]) -> list[Path]:
    """Raw-count h5ad files with cell types, donors and planted exact copies (see the module
    docstring); reused while ``params.json`` matches ``params``."""
    files, cells, genes = params["files"], params["cells"], params["genes"]
    paths = [folder / f"part{i:02d}.h5ad" for i in range(files)]
    if prepare(folder, params):
        return paths
    import h5py
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(params["seed"])
    names, columns = gene_names(genes, params["gene_names"])
    var = pd.DataFrame(columns, index=pd.Index(names))
    types = params["types"]
    p_types = type_proportions(rng, types, params["rare"])
    cdf = type_programs(rng, genes, types, params["lineages"])
    # UMIs per cell: lognormal, scaled so that the distinct genes come near params["nnz"]
    mu = np.log(params["nnz"] * 1.2) - 0.125
    sizes = file_sizes(cells, files)
    copies_per_file = file_sizes(params["copies"], files - 1) if files > 1 else []
    labels_of: list[NDArray[np.int64]] = []
    donors_of: list[NDArray[np.object_]] = []
    for i, (path, n) in enumerate(zip(paths, sizes, strict=True)):
        labels = rng.choice(types, size=n, p=p_types).astype(np.int64)
        donor_ids = rng.integers(0, params["donors"], size=n)
        depth = rng.uniform(0.9, 1.1, params["donors"])[donor_ids]  # a donor's depth
        umis = np.maximum(20, np.round(rng.lognormal(mu, 0.5, n) * depth)).astype(np.int64)
        names_i = np.asarray([f"donor{i}-{d}" for d in range(params["donors"])], dtype=object)
        donors = names_i[donor_ids]
        copy_rows = np.zeros(0, dtype=np.int64)
        copies = None
        if i > 0 and copies_per_file[i - 1]:
            m = copies_per_file[i - 1]
            copy_rows = np.sort(rng.choice(n, size=m, replace=False))
            src_file = rng.integers(0, i, size=m)
            parts = []
            for g in range(i):
                sel = np.flatnonzero(src_file == g)
                src_rows = np.sort(rng.choice(sizes[g], size=sel.size, replace=False))
                labels[copy_rows[sel]] = labels_of[g][src_rows]
                donors[copy_rows[sel]] = donors_of[g][src_rows]
                parts.append((sel, read_rows(paths[g], src_rows, genes)))
            order = np.concatenate([sel for sel, _ in parts])
            stacked = sp.vstack([x for _, x in parts], format="csr")
            copies = stacked[np.argsort(order)]  # row j: the copy placed at copy_rows[j]
        labels_of.append(labels)
        donors_of.append(donors)
        obs = pd.DataFrame(
            {
                "cell_type": pd.Categorical([f"type{k:02d}" for k in labels]),
                "donor": pd.Categorical(donors),
            },
            index=pd.Index([f"f{i}-c{r}" for r in range(n)]),
        )
        tmp = path.with_name(f".{path.name}.partial")
        write_skeleton(tmp, obs, var)
        with h5py.File(tmp, "a") as f:
            if "X" in f:
                del f["X"]
            x = f.create_group("X")
            x.attrs["encoding-type"] = "csr_matrix"
            x.attrs["encoding-version"] = "0.1.0"
            x.attrs["shape"] = np.array([n, genes], dtype=np.int64)
            data = x.create_dataset("data", (0,), dtype="f4", maxshape=(None,), chunks=(1 << 18,))
            indices = x.create_dataset(
                "indices", (0,), dtype="i4", maxshape=(None,), chunks=(1 << 18,)
            )
            indptr = np.zeros(n + 1, dtype=np.int64)
            done = 0
            for start, chunk in zip(
                range(0, n, CHUNK), count_chunks(rng, cdf, labels, umis, genes), strict=True
            ):
                if copies is not None:  # swap the planted copies in
                    stop = start + chunk.shape[0]
                    lo, hi = np.searchsorted(copy_rows, [start, stop])
                    if hi > lo:
                        take = np.arange(chunk.shape[0])
                        take[copy_rows[lo:hi] - start] = chunk.shape[0] + np.arange(hi - lo)
                        chunk = sp.vstack([chunk, copies[lo:hi]], format="csr")[take]
                nnz = chunk.nnz
                data.resize((done + nnz,))
                indices.resize((done + nnz,))
                data[done:] = chunk.data
                indices[done:] = chunk.indices
                indptr[start + 1 : start + chunk.shape[0] + 1] = chunk.indptr[1:] + done
                done += nnz
            x.create_dataset("indptr", data=indptr)
        tmp.rename(path)
        print(f"wrote {path} ({n:,} cells, {done / n:.0f} nonzeros a cell)", file=sys.stderr)
    write_marker(folder, params, {"type_proportions": p_types.round(5).tolist()})
    return paths


def write_obsm(folder: Path, params: dict[str, Any]) -> list[Path]:
    """h5ad files with ``obsm['X_emb']`` (float32, 50-d) and no X; reused while
    ``params.json`` matches ``params``."""
    files, cells = params["files"], params["cells"]
    paths = [folder / f"part{i:02d}.h5ad" for i in range(files)]
    if prepare(folder, params):
        return paths
    import h5py
    import pandas as pd

    rng = np.random.default_rng(params["seed"])
    types = params["types"]
    p_types = type_proportions(rng, types, params["rare"])
    scale = 1.0 / np.sqrt(np.arange(1, EMB_DIM + 1))
    centers = rng.normal(size=(types, EMB_DIM)) * scale * 6
    spread = rng.uniform(0.3, 1.2, types)
    for i, (path, n) in enumerate(zip(paths, file_sizes(cells, files), strict=True)):
        labels = rng.choice(types, size=n, p=p_types)
        donors = rng.integers(0, params["donors"], size=n)
        obs = pd.DataFrame(
            {
                "cell_type": pd.Categorical.from_codes(
                    labels, categories=[f"type{k:02d}" for k in range(types)]
                ),
                "donor": pd.Categorical.from_codes(
                    donors, categories=[f"donor{i}-{d}" for d in range(params["donors"])]
                ),
            },
            index=pd.Index([f"f{i}-c{r}" for r in range(n)]),
        )
        tmp = path.with_name(f".{path.name}.partial")
        write_skeleton(tmp, obs, pd.DataFrame(index=pd.Index([], dtype=str)))
        with h5py.File(tmp, "a") as f:
            obsm = f.require_group("obsm")
            emb = obsm.create_dataset("X_emb", (n, EMB_DIM), dtype="f4")
            emb.attrs["encoding-type"] = "array"
            emb.attrs["encoding-version"] = "0.2.0"
            for start in range(0, n, 1 << 16):
                lab = labels[start : start + (1 << 16)]
                noise = rng.normal(size=(lab.size, EMB_DIM)) * scale * spread[lab, None]
                emb[start : start + lab.size] = (centers[lab] + noise).astype(np.float32)
        tmp.rename(path)
        print(f"wrote {path} ({n:,} cells)", file=sys.stderr)
    write_marker(folder, params, {"type_proportions": p_types.round(5).tolist()})
    return paths


def write_marker(folder: Path, params: dict[str, Any], extra: dict[str, Any]) -> None:
    tmp = folder / ".params.json.partial"
    tmp.write_text(json.dumps({"params": params, **extra}, indent=1))
    tmp.rename(folder / "params.json")  # last: the files before it are complete


def warm(paths: list[Path]) -> None:
    """Read every file once, so that every run meets a warm page cache."""
    for path in paths:
        with path.open("rb") as f:
            while f.read(1 << 24):
                pass


# ------------------------------------------------------------------------------------------
# Peers (run in --peer-python: numpy, anndata, scanpy, geosketch; never scurate)


def child_scanpy(paths: list[str], budget: int, seed: int, pca_out: str | None) -> dict[str, Any]:
    steps: dict[str, float] = {}
    t = time.perf_counter()

    def step(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        steps[name] = now - t
        t = now

    import warnings

    import anndata as ad
    import scanpy as sc

    warnings.simplefilter("ignore")
    step("import")
    parts = [ad.read_h5ad(p) for p in paths]
    step("read_h5ad")
    adata = ad.concat(parts) if len(parts) > 1 else parts[0]
    del parts
    step("concat")
    sc.pp.normalize_total(adata, target_sum=1e4)
    step("normalize_total")
    sc.pp.log1p(adata)
    step("log1p")
    sc.pp.highly_variable_genes(adata, flavor="seurat", n_top_genes=2000)
    step("highly_variable_genes")
    sc.pp.pca(adata, n_comps=50)  # on the highly variable genes (scanpy's default mask)
    step("pca")
    if hasattr(sc.pp, "sample"):
        picked = sc.pp.sample(adata, n=budget, rng=seed, copy=True)
        n_picked = picked.n_obs
    else:  # scanpy < 1.11
        n_picked = len(np.random.default_rng(seed).choice(adata.n_obs, budget, replace=False))
    step("sample")
    if pca_out:
        np.save(pca_out, np.ascontiguousarray(adata.obsm["X_pca"], dtype=np.float32))
        step("save_pca (for geosketch)")
    return {"steps": steps, "n_cells": adata.n_obs, "n_picked": n_picked}


def read_obsm_arrays(paths: list[str]) -> NDArray[np.float32]:
    import anndata as ad

    return np.concatenate([ad.read_h5ad(p).obsm["X_emb"] for p in paths])


def child_random(paths: list[str], budget: int, seed: int) -> dict[str, Any]:
    t = time.perf_counter()
    x = read_obsm_arrays(paths)
    read = time.perf_counter() - t
    picked = np.random.default_rng(seed).choice(len(x), size=budget, replace=False)
    return {
        "steps": {"read_h5ad": read, "sample": time.perf_counter() - t - read},
        "n_cells": len(x),
        "n_picked": len(picked),
    }


def child_geosketch(source: str, budget: int, seed: int) -> dict[str, Any]:
    t = time.perf_counter()
    npy = source.endswith(".npy")  # the scanpy route's PCA, else the obsm files
    x = np.load(source) if npy else read_obsm_arrays(source.split(os.pathsep))
    read = time.perf_counter() - t
    from geosketch import gs

    t = time.perf_counter()
    picked = gs(x, budget, replace=False, seed=seed)
    return {
        "steps": {"read": read, "sketch": time.perf_counter() - t},
        "n_cells": len(x),
        "n_picked": len(picked),
    }


# ------------------------------------------------------------------------------------------
# Measuring


def measure(
    cmd: list[str], log: Path, timeout: float | None = None, check: bool = True
) -> dict[str, Any]:
    """Run ``cmd`` in a fresh process: wall s, CPU s, peak RSS GB, and its stdout's last line.

    A failure stops the benchmark with ``check``, else it is recorded (``failed``)."""
    stats = log.with_suffix(".time")
    stats.unlink(missing_ok=True)
    if TIME.exists():
        full = [str(TIME), "-f", "%e %U %S %M", "-o", str(stats), *cmd]
    else:
        full = [sys.executable, "-c", WRAPPER, str(stats), *cmd]
    start = time.perf_counter()
    with log.with_suffix(".out").open("wb") as out, log.with_suffix(".err").open("wb") as err:
        proc = subprocess.Popen(full, stdout=out, stderr=err, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
            timed_out = True
    wall = time.perf_counter() - start
    result: dict[str, Any] = {"wall_s": wall, "rc": rc, "timed_out": timed_out}
    if timed_out:
        return result
    if rc != 0:
        tail = log.with_suffix(".err").read_text(errors="replace").strip().splitlines()[-15:]
        print("\n".join(tail), file=sys.stderr)
        msg = f"failed (exit {rc}): {' '.join(cmd)}; see {log.with_suffix('.err')}"
        if check:
            raise SystemExit(msg)
        print(msg, file=sys.stderr)
        result["failed"] = True
        return result
    fields = stats.read_text().split("\n")[-2].split()  # the last line (an rc line may precede)
    result["cpu_s"] = float(fields[1]) + float(fields[2])
    result["rss_gb"] = int(fields[3]) * 1024 / 1e9
    lines = log.with_suffix(".out").read_text(errors="replace").strip().splitlines()
    if lines and lines[-1].startswith("{"):
        result["child"] = json.loads(lines[-1])
    return result


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(
            int(line.split()[1]) * 1024 / 2**30
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem = float("nan")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "mem_gib": round(mem, 1),
        "python": platform.python_version(),
    }


def versions(peer: str) -> dict[str, str]:
    from importlib.metadata import version

    out = {"scurate": version("scurate")}
    code = (
        "import json; from importlib.metadata import version as v\n"
        "r = {}\n"
        "for p in ('scanpy', 'anndata', 'numpy', 'geosketch'):\n"
        "    try: r[p] = v(p)\n"
        "    except Exception as e: r[p] = 'missing'\n"
        "print(json.dumps(r))"
    )
    done = subprocess.run([peer, "-c", code], capture_output=True, text=True, check=True)
    out.update({f"peer {k}": v for k, v in json.loads(done.stdout).items()})
    return out


# ------------------------------------------------------------------------------------------
# The runs


class Bench:
    def __init__(self, args: argparse.Namespace, data: Path, out: Path, peer: str) -> None:
        self.args = args
        self.data = data
        self.out = out
        self.peer = peer
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.scurate = args.scurate or str(Path(sys.executable).parent / "scurate")
        self.script = str(Path(__file__).resolve())

    def record(self, name: str, result: dict[str, Any], round_: int) -> dict[str, Any]:
        result["round"] = round_
        self.results.setdefault(name, []).append(result)
        partial = self.out / "bench_e2e.partial.json"  # kept should a later run stop the bench
        partial.write_text(json.dumps(self.results, indent=1))
        wall = f">{result['wall_s']:.0f}" if result["timed_out"] else f"{result['wall_s']:.1f}"
        wall += " (failed)" if result.get("failed") else ""
        rss = f", {result['rss_gb']:.2f} GB" if "rss_gb" in result else ""
        print(f"round {round_ + 1}: {name}: {wall} s{rss}", file=sys.stderr)
        return result

    def select(self, name: str, round_: int, *extra: str) -> dict[str, Any]:
        folder = self.out / f"r{round_}-{name.replace(' ', '_').replace(',', '')}"
        shutil.rmtree(folder, ignore_errors=True)
        cmd = [self.scurate, "select", str(self.data), "-o", str(folder), *extra]
        if self.args.threads:
            cmd += ["--threads", str(self.args.threads)]
        result = measure(cmd, self.out / "logs" / folder.name)
        report = json.loads((folder / "report.json").read_text())
        result["timings_s"] = report["timings_s"]
        result["n_pool"] = report["n_pool"]
        result["n_selected"] = report["n_selected"]
        result["exact_copies"] = report["duplicates"]["exact_copies"]
        result["set_aside"] = report["duplicates"]["set_aside"]
        shutil.rmtree(folder)
        return self.record(name, result, round_)

    def peer_run(
        self, name: str, round_: int, child: str, *extra: str, timeout: float | None = None
    ) -> dict[str, Any]:
        cmd = [self.peer, self.script, "--child", child, "--budget", str(self.args.budget)]
        cmd += ["--seed", str(self.args.seed), *extra]
        log = self.out / "logs" / f"r{round_}-{child}"
        return self.record(name, measure(cmd, log, timeout=timeout, check=False), round_)

    def counts_units(self, round_: int) -> dict[str, Any]:
        budget = str(self.args.budget)
        work = self.out / "work"
        pca = self.out / "X_pca.npy"
        files = os.pathsep.join(str(p) for p in sorted(self.data.glob("*.h5ad")))

        def default() -> None:
            self.select("scurate", round_, "--budget", budget, "--no-cache")

        def work_dir() -> None:
            shutil.rmtree(work, ignore_errors=True)
            self.select("scurate, fill work dir", round_, "-b", budget, "--work-dir", str(work))
            rerun = ["-b", str(2 * self.args.budget), "--policy", self.args.rerun_policy]
            self.select("scurate, rerun from it", round_, *rerun, "--work-dir", str(work))
            shutil.rmtree(work, ignore_errors=True)

        def scanpy() -> None:
            sketch = round_ < self.args.geosketch_rounds and self.args.geosketch_timeout > 0
            extra = ["--pca-out", str(pca)] if sketch else []
            self.peer_run("scanpy route", round_, "scanpy", "--files-list", files, *extra)
            if sketch:
                self.peer_run(
                    "geosketch",
                    round_,
                    "geosketch",
                    "--files-list",
                    str(pca),
                    timeout=self.args.geosketch_timeout,
                )
                pca.unlink(missing_ok=True)

        return {"scurate": default, "work dir": work_dir, "scanpy": scanpy}

    def obsm_units(self, round_: int) -> dict[str, Any]:
        files = os.pathsep.join(str(p) for p in sorted(self.data.glob("*.h5ad")))

        def default() -> None:
            extra = ["--obsm-key", "X_emb", "--budget", str(self.args.budget), "--no-cache"]
            self.select("scurate", round_, *extra)

        def random() -> None:
            self.peer_run("random sample", round_, "random", "--files-list", files)

        def sketch() -> None:
            if round_ < self.args.geosketch_rounds and self.args.geosketch_timeout > 0:
                self.peer_run(
                    "geosketch",
                    round_,
                    "geosketch",
                    "--files-list",
                    files,
                    timeout=self.args.geosketch_timeout,
                )

        return {"scurate": default, "random": random, "geosketch": sketch}

    def run(self) -> None:
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        for r in range(self.args.repeats):
            units = self.counts_units(r) if self.args.mode == "counts" else self.obsm_units(r)
            order = list(units) if r % 2 == 0 else list(units)[::-1]
            for name in order:
                units[name]()


# ------------------------------------------------------------------------------------------
# The report


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def finished(result: dict[str, Any]) -> bool:
    return not result["timed_out"] and not result.get("failed")


def median_of(results: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in results if key in r and finished(r)]
    return statistics.median(values) if values else None


def wall_of(results: list[dict[str, Any]]) -> str:
    done = [r["wall_s"] for r in results if finished(r)]
    if done:
        return fmt(statistics.median(done))
    capped = [r["wall_s"] for r in results if r["timed_out"]]
    return f">{min(capped):.0f}" if capped else "failed"


def ratios(
    results: dict[str, list[dict[str, Any]]], name: str, base: str = "scurate"
) -> list[float]:
    """scurate's wall / this run's wall, within each round where both ran to the end."""
    by_round = {r["round"]: r["wall_s"] for r in results.get(base, []) if finished(r)}
    return [
        by_round[r["round"]] / r["wall_s"]
        for r in results.get(name, [])
        if r["round"] in by_round and finished(r)
    ]


def sketch_of(result: dict[str, Any]) -> float | None:
    return float(result["child"]["steps"]["sketch"]) if finished(result) else None


def report(
    args: argparse.Namespace, results: dict[str, list[dict[str, Any]]], info: dict[str, Any]
) -> str:
    m = info["machine"]
    lines = [
        f"{info['cells']:,} cells in {info['files']} h5ad files ({args.mode}); budget "
        f"{args.budget:,}; {args.repeats} round(s), order alternating; medians",
        f"machine: {m['cpu']}, {m['cores_usable']} of {m['cores']} cores, {m['mem_gib']} GiB; "
        f"load average (1, 5, 15 min) before {info['load_before']}, after {info['load_after']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        "",
        "| run | wall s | CPU s | peak RSS GB | scurate / run (wall, same round) | rounds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    what = {
        "scurate": "scurate select (default policy, --no-cache"
        + (", --obsm-key X_emb)" if args.mode == "obsm" else ")"),
        "scurate, fill work dir": "scurate select, keeping a work dir",
        "scurate, rerun from it": f"scurate select -b {2 * args.budget:,} --policy "
        f"{args.rerun_policy}, from the work dir",
        "scanpy route": "scanpy route (read, concat, normalize, log1p, HVG, PCA, sample)",
        "geosketch": "geosketch (its process; sketch step below)",
        "random sample": "anndata read + numpy random sample",
    }
    for name, runs in results.items():
        rs = ratios(results, name)
        ratio = "1" if name == "scurate" else (fmt(statistics.median(rs), 2) if rs else "—")
        if name.startswith("scurate,"):
            ratio = "—"
        lines.append(
            f"| {what.get(name, name)} | {wall_of(runs)} | {fmt(median_of(runs, 'cpu_s'))} | "
            f"{fmt(median_of(runs, 'rss_gb'), 2)} | {ratio} | {len(runs)} |"
        )
    derived = []
    if "geosketch" in results:
        sketches = results["geosketch"]
        done = [s for s in (sketch_of(r) for r in sketches) if s is not None]
        stopped = (
            f">{args.geosketch_timeout:.0f}" if any(r["timed_out"] for r in sketches) else "failed"
        )
        cap = fmt(statistics.median(done)) if done else stopped
        base = [r["wall_s"] for r in results["scurate"] if r["round"] < args.geosketch_rounds]
        ratio = fmt(statistics.median(base) / statistics.median(done), 2) if done else "—"
        derived.append(f"| geosketch sketch step alone | {cap} | | | {ratio} | {len(sketches)} |")
        if "scanpy route" in results and done:
            routes = results["scanpy route"]
            totals = [
                r["wall_s"]
                - r["child"]["steps"]["sample"]
                - r["child"]["steps"].get("save_pca (for geosketch)", 0.0)
                for r in routes
                if r["round"] < args.geosketch_rounds and finished(r)
            ]
            if totals:
                total = statistics.median(totals) + statistics.median(done)
                derived.append(
                    f"| scanpy route to PCA + geosketch (derived) | {fmt(total)} | | | "
                    f"{fmt(statistics.median(base) / total, 2)} | |"
                )
    less = [r["wall_s"] - r["timings_s"].get("select", 0.0) for r in results["scurate"]]
    derived.append(
        f"| scurate less its select stage (derived: ≈ `--policy random`) | "
        f"{fmt(statistics.median(less))} | | | — | {len(less)} |"
    )
    lines += derived
    peer = "scanpy route" if "scanpy route" in results else "random sample"
    by_round = {r["round"]: r["wall_s"] for r in results.get(peer, []) if finished(r)}
    pairs = [
        (r["wall_s"] - r["timings_s"].get("select", 0.0)) / by_round[r["round"]]
        for r in results["scurate"]
        if r["round"] in by_round
    ]
    if pairs:
        lines.append(
            f"\nscurate less its select stage / {peer} (same round): {statistics.median(pairs):.2f}"
        )
    if "scurate, rerun from it" in results:
        fill = median_of(results["scurate, fill work dir"], "wall_s")
        rerun = median_of(results["scurate, rerun from it"], "wall_s")
        first = median_of(results["scurate"], "wall_s")
        if fill and rerun and first:
            lines.append(
                f"\nrerun from the work dir / run without it: {rerun / first:.2f}; "
                f"keeping the work dir costs {fill / first:.2f}x the run without it"
            )
    # stage tables
    stage_runs = [n for n in results if n.startswith("scurate")]
    stages: list[str] = []
    for n in stage_runs:
        for r in results[n]:
            stages += [s for s in r["timings_s"] if s not in stages]
    lines += ["", "scurate stages (report.json `timings_s`, medians, s):", ""]
    lines.append("| stage | " + " | ".join(stage_runs) + " |")
    lines.append("|---|" + "---:|" * len(stage_runs))
    for s in stages:
        cells = []
        for n in stage_runs:
            values = [r["timings_s"][s] for r in results[n] if s in r["timings_s"]]
            cells.append(fmt(statistics.median(values), 2) if values else "—")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    first_run = results["scurate"][0]
    if args.mode == "counts":
        lines.append(
            f"\nscurate pool {first_run['n_pool']:,}, exact copies found "
            f"{first_run['exact_copies']:,} (planted: {info.get('copies', 0):,}), set aside "
            f"{first_run['set_aside']:,}"
        )
    for name in ("scanpy route", "random sample", "geosketch"):
        runs = [r for r in results.get(name, []) if "child" in r]
        if not runs:
            continue
        steps = list(runs[0]["child"]["steps"])
        lines += ["", f"{name} steps (timed inside its process, medians, s):", ""]
        lines.append("| " + " | ".join(steps) + " |")
        lines.append("|" + "---:|" * len(steps))
        lines.append(
            "| "
            + " | ".join(
                fmt(statistics.median(r["child"]["steps"][s] for r in runs), 2) for s in steps
            )
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("counts", "obsm"), default="counts")
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--gene-names", choices=("ensembl", "symbol"), default="ensembl")
    parser.add_argument("--nnz", type=int, default=500, help="nonzeros per cell, about")
    parser.add_argument("--types", type=int, default=40)
    parser.add_argument("--lineages", type=int, default=6, help="counts: lineages of types")
    parser.add_argument("--rare", type=int, default=3, help="types at 0.1-0.4 %% of cells")
    parser.add_argument("--donors", type=int, default=4, help="donors per file")
    parser.add_argument("--copies", type=int, default=None, help="default: 2,000 per 1M cells")
    parser.add_argument("--budget", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rerun-policy", default="random")
    parser.add_argument("--geosketch-timeout", type=float, default=1200.0, help="0: skip it")
    parser.add_argument("--geosketch-rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="scurate --threads (0: default)")
    parser.add_argument("--peer-python", default=sys.executable)
    parser.add_argument("--scurate", default=None)
    parser.add_argument("--data", type=Path, default=Path("/tmp/scurate-bench/e2e"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/e2e"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--files-list", help=argparse.SUPPRESS)
    parser.add_argument("--pca-out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:  # a peer's process (in --peer-python)
        if args.child == "scanpy":
            paths = args.files_list.split(os.pathsep)
            result = child_scanpy(paths, args.budget, args.seed, args.pca_out)
        elif args.child == "random":
            result = child_random(args.files_list.split(os.pathsep), args.budget, args.seed)
        else:
            result = child_geosketch(args.files_list, args.budget, args.seed)
        print(json.dumps(result))
        return

    copies = args.copies if args.copies is not None else round(args.cells * 2_000 / 1_000_000)
    params: dict[str, Any] = {
        "generator": GENERATOR_VERSION,
        "mode": args.mode,
        "cells": args.cells,
        "files": args.files,
        "types": args.types,
        "rare": args.rare,
        "donors": args.donors,
        "seed": args.seed,
    }
    if args.mode == "counts":
        params |= {
            "genes": args.genes,
            "gene_names": args.gene_names,
            "nnz": args.nnz,
            "lineages": args.lineages,
            "copies": copies if args.files > 1 else 0,
        }
    data = args.data / f"{args.mode}-{args.cells}x{args.files}"
    start = time.perf_counter()
    paths = write_counts(data, params) if args.mode == "counts" else write_obsm(data, params)
    print(f"data in {data} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    needs = "anndata, scanpy" + (", geosketch" if args.geosketch_timeout > 0 else "")
    done = subprocess.run([args.peer_python, "-c", f"import {needs}"], capture_output=True)
    if done.returncode != 0:
        msg = f"--peer-python {args.peer_python} lacks one of {needs}: see the docstring"
        raise SystemExit(msg)
    warm(paths)
    info: dict[str, Any] = {
        "cells": args.cells,
        "files": args.files,
        "copies": params.get("copies", 0),
        "machine": machine(),
        "versions": versions(args.peer_python),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    bench = Bench(args, data, args.out, args.peer_python)
    bench.run()
    info["load_after"] = [round(x, 2) for x in os.getloadavg()]
    text = report(args, bench.results, info)
    print("\n" + text)
    raw = {"args": {k: str(v) for k, v in vars(args).items()}, "params": params, **info}
    raw["results"] = bench.results
    (args.out / "bench_e2e.json").write_text(json.dumps(raw, indent=1))
    print(f"\nraw numbers: {args.out / 'bench_e2e.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Seeded builders of real h5ad files for the tests (a few thousand cells at most)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse as sp

N_GENES = 300


def gene_symbols(n: int = N_GENES) -> np.ndarray:
    return np.array([f"SG{i:04d}" for i in range(1, n + 1)], dtype=object)


def ensembl_ids(n: int = N_GENES) -> np.ndarray:
    return np.array([f"ENSG9{i:010d}" for i in range(1, n + 1)], dtype=object)


def type_programs(
    rng: np.random.Generator,
    n_types: int,
    n_genes: int = N_GENES,
    boost: tuple[float, float] = (8.0, 20.0),
) -> np.ndarray:
    """Per cell type, relative expression over genes: a shared background plus 25 markers,
    each raised by a factor drawn from ``boost`` (small factors: types that overlap)."""
    base = rng.gamma(0.6, 1.0, size=n_genes)
    programs = np.tile(base, (n_types, 1))
    for t in range(n_types):
        markers = rng.choice(n_genes, size=25, replace=False)
        programs[t, markers] *= rng.uniform(*boost, size=25)
    return programs / programs.sum(axis=1, keepdims=True)


def make_counts(
    rng: np.random.Generator, programs: np.ndarray, types: np.ndarray, depth: float = 2000.0
) -> sp.csr_matrix:
    libsize = rng.lognormal(np.log(depth), 0.3, size=len(types))
    return sp.csr_matrix(rng.poisson(programs[types] * libsize[:, None]).astype(np.float32))


def make_adata(
    rng: np.random.Generator,
    programs: np.ndarray,
    type_names: Sequence[str],
    counts_per_type: Sequence[int],
    *,
    prefix: str,
    genes: np.ndarray | None = None,
) -> ad.AnnData:
    """An AnnData of raw counts with ``counts_per_type[t]`` cells of type ``t``."""
    types = np.repeat(np.arange(len(counts_per_type)), counts_per_type)
    x = make_counts(rng, programs, types)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(np.asarray(type_names)[types])},
        index=[f"{prefix}{i:05d}" for i in range(len(types))],
    )
    var = pd.DataFrame(index=gene_symbols(programs.shape[1]) if genes is None else genes)
    return ad.AnnData(x, obs=obs, var=var)


TYPES = ("T", "B", "NK", "Mono", "pDC")


@pytest.fixture
def programs() -> np.ndarray:
    return type_programs(np.random.default_rng(42), len(TYPES))


def write_two_labs(root: Path, seed: int = 0) -> list[Path]:
    """lab_a: symbols in var_names, 8 rare pDCs; lab_b: Ensembl ids with a version in
    var_names and symbols in var['gene_symbols'], genes shuffled, 90 % of them."""
    rng = np.random.default_rng(seed)
    programs = type_programs(np.random.default_rng(42), len(TYPES))
    a = make_adata(rng, programs, TYPES, [300, 200, 150, 240, 8], prefix="a_")
    b = make_adata(rng, programs, TYPES, [250, 150, 100, 200, 0], prefix="b_")
    keep = rng.permutation(np.sort(rng.choice(N_GENES, size=int(0.9 * N_GENES), replace=False)))
    b = b[:, keep].copy()
    b.var["gene_symbols"] = b.var_names.to_numpy()
    b.var_names = [f"{e}.{i % 7 + 1}" for i, e in enumerate(ensembl_ids()[keep])]
    paths = [root / "lab_a.h5ad", root / "lab_b.h5ad"]
    a.write_h5ad(paths[0])
    b.write_h5ad(paths[1])
    return paths


@pytest.fixture
def two_labs(tmp_path: Path) -> list[Path]:
    return write_two_labs(tmp_path)


def select_two_labs(root: Path, budget: int, seed: int) -> Path:
    """A ``select`` output folder (seed 0) of ``budget`` cells of :func:`write_two_labs`."""
    import scurate

    scurate.select_to_dir(write_two_labs(root, seed), budget, out=root / "out", seed=0)
    return root / "out"


def selected_cells(out: Path) -> pl.DataFrame:
    """The selected rows of a ``select`` output's manifest, in priority order."""
    from scurate._data import manifest as mf

    return mf.read_manifest(out / "manifest.parquet").filter("selected").sort("selection_rank")


def write_selection_folder(frame: pl.DataFrame, out: Path) -> Path:
    """``frame`` written as ``out``'s manifest, with a report.json that records it: a complete
    output folder, as ``select`` writes one (for tests that edit a manifest)."""
    import json

    from scurate._data import manifest as mf
    from scurate._engine.outputs import digest

    mf.write_manifest(frame, out / "manifest.parquet")
    record = {"parameters": {}, "written": {"manifest.parquet": digest(out / "manifest.parquet")}}
    (out / "report.json").write_text(json.dumps(record))
    return out


def rows_on_symbols(source: str | Path, rows: np.ndarray, genes: np.ndarray) -> np.ndarray:
    """Rows of a source file as anndata reads them, on ``genes`` (symbols; zeros for a gene
    the file lacks)."""
    adata = ad.read_h5ad(source)
    symbols = (
        adata.var["gene_symbols"].to_numpy()
        if "gene_symbols" in adata.var
        else adata.var_names.to_numpy()
    )
    column = {g: j for j, g in enumerate(symbols)}
    x = adata.X[rows].toarray()
    return np.stack([x[:, column[g]] if g in column else np.zeros(len(rows)) for g in genes], 1)


def write_h5ad(adata: ad.AnnData, path: Path) -> Path:
    adata.write_h5ad(path)
    return path

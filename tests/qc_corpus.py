"""A seeded corpus with planted junk for the QC tests: common types, rare types, low-depth
cells and heterotypic doublets (the sum of two cells' counts)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

N_GENES = 2000
N_MITO = 13
COMMON = {"T": 700, "B": 600, "NK": 500, "Mono": 600, "DC": 400}
RARE = {"pDC": 8, "ILC": 6}


def symbols(n_genes: int = N_GENES) -> np.ndarray:
    """Gene symbols; the last ``N_MITO`` are mitochondrial (MT-...)."""
    names = [f"G{i:05d}" for i in range(n_genes - N_MITO)]
    return np.array(names + [f"MT-GENE{i}" for i in range(N_MITO)], dtype=object)


def programs(rng: np.random.Generator, n_types: int, n_genes: int = N_GENES) -> np.ndarray:
    """Per type, relative expression: a shared background, 60 markers raised 5-20x, and the
    mitochondrial genes at about 4 % of the counts."""
    base = rng.gamma(0.5, 1.0, size=n_genes)
    out = np.tile(base, (n_types, 1))
    for t in range(n_types):
        markers = rng.choice(n_genes - N_MITO, size=60, replace=False)
        out[t, markers] *= rng.uniform(5.0, 20.0, size=60)
    out[:, -N_MITO:] = 0.0
    out /= out.sum(axis=1, keepdims=True)
    out *= 0.96
    out[:, -N_MITO:] = 0.04 / N_MITO
    return out


def planted_corpus(
    seed: int = 0,
    *,
    n_low: int = 100,
    n_doublets: int = 80,
    depth: float = 3000.0,
) -> tuple[ad.AnnData, dict[str, np.ndarray]]:
    """One AnnData of raw counts and, per kind of cell (``low_depth``, ``doublet``, and each
    rare type by name), its row positions."""
    rng = np.random.default_rng(seed)
    names = [*COMMON, *RARE]
    sizes = [*COMMON.values(), *RARE.values()]
    prog = programs(rng, len(names))
    types = np.repeat(np.arange(len(names)), sizes)

    def counts(kinds: np.ndarray, libsize: np.ndarray) -> np.ndarray:
        return rng.poisson(prog[kinds] * libsize[:, None])

    real = counts(types, rng.lognormal(np.log(depth), 0.3, size=len(types)))
    low_types = rng.choice(len(COMMON), size=n_low)
    low = counts(low_types, rng.uniform(60, 200, size=n_low))
    first = rng.choice(len(COMMON), size=n_doublets)
    second = (first + rng.integers(1, len(COMMON), size=n_doublets)) % len(COMMON)
    lib = rng.lognormal(np.log(depth), 0.3, size=(2, n_doublets))
    doublets = counts(first, lib[0]) + counts(second, lib[1])
    x = np.vstack([real, low, doublets]).astype(np.float32)
    label = np.r_[
        np.asarray(names, dtype=object)[types],
        np.asarray(names, dtype=object)[low_types],
        np.full(n_doublets, "doublet", dtype=object),
    ]
    order = rng.permutation(len(x))  # planted cells anywhere in the file
    x, label = x[order], label[order]
    where = np.argsort(order)  # position of each original row
    n_real = len(types)
    kinds = {
        "low_depth": np.sort(where[n_real : n_real + n_low]),
        "doublet": np.sort(where[n_real + n_low :]),
    }
    for name in RARE:
        kinds[name] = np.sort(where[:n_real][types == names.index(name)])
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(label)}, index=[f"c{i:05d}" for i in range(len(x))]
    )
    adata = ad.AnnData(sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=symbols()))
    return adata, kinds


def write_planted(folder: Path, seed: int = 0) -> tuple[Path, dict[str, np.ndarray]]:
    adata, kinds = planted_corpus(seed)
    path = folder / "planted.h5ad"
    adata.write_h5ad(path)
    return path, kinds

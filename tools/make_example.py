"""Generate the small synthetic example corpus shipped in scurate/data/example/.

    python tools/make_example.py            # rewrite the folder (seeded, deterministic)
    python tools/make_example.py --check    # only re-run the self-check on what is there

Four "labs" of synthetic blood cells, raw integer UMI counts, written as .h5ad files that
differ the way real depositions do (gene identifier kind, gene subset and order, obs column
names, X layout and dtype), with planted traps a curation tool has to handle:

* lab_c re-deposits 60 lab_a cells as exact copies (same counts on the genes lab_c has)
  under new obs names;
* lab_c has two symbols that occur twice (an extra "alternate locus" id per symbol);
* the rare plasmacytoid dendritic cells (8) exist only in lab_d;
* a few lab_d barcodes equal lab_c barcodes although they are different cells.

Every gene is synthetic: symbols SG0001..SG1000 and Ensembl-format ids ENSG90000000001..
(a range no Ensembl release uses). What was planted is written to planted.json next to the
files, and a self-check at the end re-derives those facts from the written files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import warnings
from collections.abc import Set as AbstractSet
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

SEED = 20240917
OUT = Path(__file__).resolve().parent.parent / "scurate" / "data" / "example"
MAX_BYTES = 1_000_000

N_GENES = 800
N_ALT = 2  # extra lab_c features whose symbols repeat an existing symbol

T, B, NK, CMONO, NCMONO, DC, PLT, PDC = (
    "T cell",
    "B cell",
    "NK cell",
    "classical monocyte",
    "non-classical monocyte",
    "dendritic cell",
    "platelet",
    "plasmacytoid dendritic cell",
)
TYPES = [T, B, NK, CMONO, NCMONO, DC, PLT, PDC]
RARE = PDC

# median UMIs per cell, by type (shallow on purpose: the folder has to stay under 1 MB)
MEDIAN_UMI = {T: 250, B: 260, NK: 250, CMONO: 400, NCMONO: 370, DC: 340, PLT: 100, PDC: 330}

# PBMC-like composition for the three big labs
PBMC = {T: 0.42, B: 0.12, NK: 0.11, CMONO: 0.19, NCMONO: 0.06, DC: 0.04, PLT: 0.06}

N_A, N_B, N_C_NATIVE, N_COPIES = 850, 750, 620, 60
LAB_D_COUNTS = {T: 22, B: 20, CMONO: 38, DC: 32, PDC: 8}  # 120 cells
N_B_GENES, N_C_GENES, N_D_GENES = 680, 680, 768  # 85 %, 85 %, 96 %
N_BARCODE_COLLISIONS = 4


# --------------------------------------------------------------------------- genes


def gene_table(rng: np.random.Generator) -> pd.DataFrame:
    """The one fixed mapping: gene i <-> symbol SGiiii <-> id ENSG9{i:010d} (version v_i)."""
    i = np.arange(1, N_GENES + 1)
    return pd.DataFrame(
        {
            "symbol": [f"SG{k:04d}" for k in i],
            "ensembl": [f"ENSG9{k:010d}" for k in i],
            "version": rng.integers(1, 19, size=N_GENES),
        }
    )


def programs(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Log-scale expression per type: a shared background plus lineage and type modules.

    Returns the per-type log-mean vectors and the indices of all marker genes."""
    background = rng.normal(0.0, 2.0, size=N_GENES)
    background[rng.choice(N_GENES, 25, replace=False)] += 3.0  # housekeeping genes
    perm = rng.permutation(N_GENES)
    pos = 0

    def take(n: int) -> np.ndarray:
        nonlocal pos
        out = perm[pos : pos + n]
        pos += n
        return out

    modules = {
        "lymphoid": ([T, B, NK], take(10)),
        "cytotoxic": ([T, NK], take(10)),
        "myeloid": ([CMONO, NCMONO, DC], take(12)),
        "monocyte": ([CMONO, NCMONO], take(10)),
        "antigen_presenting": ([B, DC, PDC], take(8)),
    }
    for t in TYPES:
        modules[t] = ([t], take(30 if t == PDC else 15))
    markers = perm[:pos]
    out = {}
    for t in TYPES:
        v = background + rng.normal(0.0, 0.12, size=N_GENES)
        for members, genes in modules.values():
            if t in members:
                v[genes] += rng.uniform(2.0, 3.6, size=len(genes))
        if t == PLT:  # platelets: few transcripts, dominated by their own program
            v[np.setdiff1d(np.arange(N_GENES), modules[PLT][1])] -= 0.8
            v[modules[PLT][1]] += 1.5
        if t == PDC:
            v[modules[PDC][1]] += 2.0
        out[t] = v
    return out, np.sort(markers)


def draw_counts(
    rng: np.random.Generator,
    labels: list[str],
    logmean: dict[str, np.ndarray],
    lab_gene_shift: np.ndarray,
    depth: float,
) -> sp.csr_matrix:
    """Gamma-Poisson (negative binomial, theta=6) UMI counts over all N_GENES genes."""
    rows = []
    for t in labels:
        lib = MEDIAN_UMI[t] * depth * np.exp(rng.normal(0.0, 0.35))
        w = np.exp(logmean[t] + lab_gene_shift)
        mu = lib * w / w.sum()
        lam = rng.gamma(6.0, mu / 6.0)
        rows.append(rng.poisson(lam))
    return sp.csr_matrix(np.asarray(rows, dtype=np.int64))


def compose(rng: np.random.Generator, n: int, mix: dict[str, float]) -> list[str]:
    types = list(mix)
    p = np.array([mix[t] for t in types])
    counts = np.floor(p / p.sum() * n).astype(int)
    counts[0] += n - counts.sum()
    labels = [t for t, c in zip(types, counts, strict=True) for _ in range(c)]
    return [labels[k] for k in rng.permutation(n)]


def barcodes(rng: np.random.Generator, n: int, taken: AbstractSet[str] = frozenset()) -> list[str]:
    out: set[str] = set()
    alphabet = np.array(list("ACGT"))
    while len(out) < n:
        bc = "".join(alphabet[rng.integers(0, 4, size=16)]) + "-1"
        if bc not in taken:
            out.add(bc)
    return sorted(out)


def cat(values: list[str]) -> pd.Categorical:
    return pd.Categorical(values, categories=sorted(set(values)))


# --------------------------------------------------------------------------- labs


def build(rng: np.random.Generator) -> tuple[dict[str, ad.AnnData], dict]:
    genes = gene_table(rng)
    logmean, markers = programs(rng)
    non_markers = np.setdiff1d(np.arange(N_GENES), markers)

    def lab_shift() -> np.ndarray:
        return rng.normal(0.0, 0.15, size=N_GENES)

    # ---- lab_a: symbols, CSR float32, all genes in a fixed "genomic" order
    a_labels = compose(rng, N_A, PBMC)
    a_counts = draw_counts(rng, a_labels, logmean, lab_shift(), depth=1.0)
    a_order = rng.permutation(N_GENES)
    a_names = [f"a_cell_{k:04d}" for k in range(1, N_A + 1)]
    a_donor = [("A1", "A2")[k] for k in rng.integers(0, 2, size=N_A)]
    lab_a = ad.AnnData(
        X=sp.csr_matrix(a_counts[:, a_order], dtype=np.float32),
        obs=pd.DataFrame(
            {"cell_type": cat(a_labels), "donor": cat(a_donor), "assay": cat(["10x 3' v3"] * N_A)},
            index=pd.Index(a_names),
        ),
        var=pd.DataFrame(
            {"feature_types": cat(["Gene Expression"] * N_GENES)},
            index=pd.Index(genes.symbol.to_numpy()[a_order]),
        ),
    )

    # ---- lab_b: versioned Ensembl ids, 85 % of genes, sorted by id, int32 CSR
    b_genes = np.sort(
        np.setdiff1d(
            np.arange(N_GENES), rng.choice(non_markers, N_GENES - N_B_GENES, replace=False)
        )
    )
    b_labels = compose(rng, N_B, PBMC)
    b_counts = draw_counts(rng, b_labels, logmean, lab_shift(), depth=0.9)
    b_donor = [("B1", "B2", "B3")[k] for k in rng.integers(0, 3, size=N_B)]
    b_names = [f"b_{d}_{k:04d}" for k, d in enumerate(b_donor, start=1)]
    lab_b = ad.AnnData(
        X=sp.csr_matrix(b_counts[:, b_genes], dtype=np.int32),
        obs=pd.DataFrame(
            {
                "celltype": cat(b_labels),
                "donor_id": cat(b_donor),
                "assay": cat(["10x 5' v2"] * N_B),
            },
            index=pd.Index(b_names),
        ),
        var=pd.DataFrame(
            {"gene_symbols": genes.symbol.to_numpy()[b_genes]},
            index=pd.Index(
                [
                    f"{e}.{v}"
                    for e, v in zip(
                        genes.ensembl.to_numpy()[b_genes],
                        genes.version.to_numpy()[b_genes],
                        strict=True,
                    )
                ]
            ),
        ),
    )

    # ---- lab_c: unversioned ids as var_names, symbols in feature_name (two repeated),
    #      another 85 % subset in its own order, CSC float32, 60 exact copies of lab_a cells
    c_genes = np.setdiff1d(
        np.arange(N_GENES), rng.choice(non_markers, N_GENES - N_C_GENES, replace=False)
    )
    c_genes = c_genes[rng.permutation(len(c_genes))]
    shared_bc = np.intersect1d(b_genes, c_genes)
    alt_of = np.sort(rng.choice(np.intersect1d(shared_bc, non_markers), N_ALT, replace=False))
    c_labels_native = compose(rng, N_C_NATIVE, PBMC)
    c_native = draw_counts(rng, c_labels_native, logmean, lab_shift(), depth=1.1)[:, c_genes]
    # the alternate-locus features: a few counts in native cells, none in the copies (so a
    # copied cell summed by symbol still equals its lab_a original exactly)
    alt_native = sp.csr_matrix(rng.poisson(0.08, size=(N_C_NATIVE, N_ALT)))
    copy_rows_a = np.sort(rng.choice(N_A, N_COPIES, replace=False))
    copies = a_counts[copy_rows_a][:, c_genes]
    x_c = sp.vstack(
        [
            sp.hstack([c_native, alt_native]),
            sp.hstack([copies, sp.csr_matrix((N_COPIES, N_ALT), dtype=np.int64)]),
        ]
    )
    c_labels = c_labels_native + [a_labels[r] for r in copy_rows_a]
    c_sample = [("C1", "C2")[k] for k in rng.integers(0, 2, size=N_C_NATIVE)] + ["C3"] * N_COPIES
    c_bc = barcodes(rng, N_C_NATIVE + N_COPIES)
    c_bc_shuffled = [c_bc[k] for k in rng.permutation(len(c_bc))]
    order = np.argsort(c_bc_shuffled, kind="stable")  # files are sorted by barcode
    c_names = [c_bc_shuffled[k] for k in order]
    c_ids = list(genes.ensembl.to_numpy()[c_genes]) + [
        f"ENSG9{N_GENES + k:010d}" for k in range(1, N_ALT + 1)
    ]
    c_symbols = list(genes.symbol.to_numpy()[c_genes]) + list(genes.symbol.to_numpy()[alt_of])
    lab_c = ad.AnnData(
        X=sp.csc_matrix(x_c.tocsr()[order], dtype=np.float32),
        obs=pd.DataFrame(
            {
                "CellType": cat([c_labels[k] for k in order]),
                "sample": cat([c_sample[k] for k in order]),
            },
            index=pd.Index(c_names),
        ),
        var=pd.DataFrame({"feature_name": c_symbols}, index=pd.Index(c_ids)),
    )
    c_row_of = {int(old): new for new, old in enumerate(order)}
    copy_pairs = [
        {
            "lab_c_row": c_row_of[N_C_NATIVE + j],
            "lab_c_obs": c_names[c_row_of[N_C_NATIVE + j]],
            "lab_a_row": int(r),
            "lab_a_obs": a_names[r],
        }
        for j, r in enumerate(copy_rows_a)
    ]
    copy_pairs.sort(key=lambda p: p["lab_c_row"])

    # ---- lab_d: symbols, 96 % of genes sorted by symbol, dense float32; the only pDCs;
    #      a few barcodes that also occur in lab_c (different cells)
    d_genes = np.sort(
        np.setdiff1d(
            np.arange(N_GENES), rng.choice(non_markers, N_GENES - N_D_GENES, replace=False)
        )
    )
    d_labels = compose(rng, sum(LAB_D_COUNTS.values()), LAB_D_COUNTS)
    d_counts = draw_counts(rng, d_labels, logmean, lab_shift(), depth=1.0)
    n_d = len(d_labels)
    native_c_names = [c_names[c_row_of[k]] for k in range(N_C_NATIVE)]
    collide = sorted(rng.choice(native_c_names, N_BARCODE_COLLISIONS, replace=False).tolist())
    d_bc = barcodes(rng, n_d - N_BARCODE_COLLISIONS, taken=set(c_names)) + collide
    d_bc = [d_bc[k] for k in rng.permutation(n_d)]
    d_order = np.argsort(d_bc, kind="stable")
    d_names = [d_bc[k] for k in d_order]
    d_labels = [d_labels[k] for k in d_order]
    d_counts = d_counts[d_order]
    d_donor = [("D1", "D2")[k] for k in rng.integers(0, 2, size=n_d)]
    lab_d = ad.AnnData(
        X=np.asarray(d_counts[:, d_genes].toarray(), dtype=np.float32),
        obs=pd.DataFrame(
            {"annotation": cat(d_labels), "donor": cat(d_donor), "assay": cat(["10x 3' v3"] * n_d)},
            index=pd.Index(d_names),
        ),
        var=pd.DataFrame(index=pd.Index(genes.symbol.to_numpy()[d_genes])),
    )

    shared_all = np.intersect1d(shared_bc, d_genes)
    labs = {"lab_a": lab_a, "lab_b": lab_b, "lab_c": lab_c, "lab_d": lab_d}
    describe = {
        "lab_a": ("cell_type", "donor", "symbols", "var_names", "csr float32"),
        "lab_b": ("celltype", "donor_id", "ensembl_versioned", "var['gene_symbols']", "csr int32"),
        "lab_c": ("CellType", "sample", "ensembl", "var['feature_name']", "csc float32"),
        "lab_d": ("annotation", "donor", "symbols", "var_names", "dense float32"),
    }
    files = {}
    for name, lab in labs.items():
        label_col, donor_col, var_kind, symbols_in, layout = describe[name]
        files[f"{name}.h5ad"] = {
            "n_obs": lab.n_obs,
            "n_vars": lab.n_vars,
            "n_symbols": int(pd.Index(_symbols(lab)).nunique()),
            "var_names": var_kind,
            "symbols_in": symbols_in,
            "X": layout,
            "label_column": label_col,
            "donor_column": donor_col,
            "cell_types": {str(k): int(v) for k, v in lab.obs[label_col].value_counts().items()},
        }
    planted = {
        "seed": SEED,
        "generator": "python tools/make_example.py",
        "files": files,
        "exact_copies": {
            "of": "lab_a.h5ad",
            "in": "lab_c.h5ad",
            "count": N_COPIES,
            "lab_c_sample": "C3",
            "pairs": copy_pairs,
        },
        "rare": {
            "cell_type": RARE,
            "file": "lab_d.h5ad",
            "count": int(sum(t == RARE for t in d_labels)),
            "obs_names": [n for n, t in zip(d_names, d_labels, strict=True) if t == RARE],
        },
        "duplicated_symbols": {
            "file": "lab_c.h5ad",
            "column": "feature_name",
            "symbols": {
                genes.symbol[i]: [genes.ensembl[i], f"ENSG9{N_GENES + k:010d}"]
                for k, i in enumerate(alt_of, start=1)
            },
        },
        "obs_name_collisions": {
            "files": ["lab_c.h5ad", "lab_d.h5ad"],
            "obs_names": collide,
            "note": "same barcode, different cells (not copies)",
        },
        "genes": {
            "total": N_GENES,
            "shared_by_symbol_all_files": len(shared_all),
            "marker_genes": len(markers),
        },
    }
    return labs, planted


# --------------------------------------------------------------------------- self-check


def ensure(ok: bool, what: str) -> None:
    """An assert that survives python -O."""
    if not ok:
        raise AssertionError(what)


def _symbols(a: ad.AnnData) -> np.ndarray:
    for col in ("gene_symbols", "feature_name"):
        if col in a.var:
            return a.var[col].astype(str).to_numpy()
    return a.var_names.to_numpy().astype(str)


def _label(a: ad.AnnData) -> np.ndarray:
    for col in ("cell_type", "celltype", "CellType", "annotation"):
        if col in a.obs:
            return a.obs[col].astype(str).to_numpy()
    raise AssertionError("no cell type column")


def _by_symbol(a: ad.AnnData, symbols: np.ndarray) -> np.ndarray:
    """Counts on the given symbols (a repeated symbol summed), as a dense int64 array."""
    x = sp.csr_matrix(a.X).astype(np.int64)
    sym = _symbols(a)
    col = {s: k for k, s in enumerate(symbols)}
    proj = sp.csr_matrix(
        (
            np.ones(sum(s in col for s in sym)),
            ([k for k, s in enumerate(sym) if s in col], [col[s] for s in sym if s in col]),
        ),
        shape=(len(sym), len(symbols)),
    )
    return np.asarray((x @ proj).toarray(), dtype=np.int64)


def self_check(out: Path) -> dict:
    """Re-derive the planted facts from the written files and assert them."""
    planted = json.loads((out / "planted.json").read_text())
    labs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as pytest -W error would
        for name in ("lab_a", "lab_b", "lab_c", "lab_d"):
            labs[name] = ad.read_h5ad(out / f"{name}.h5ad")
    a, b, c, d = labs["lab_a"], labs["lab_b"], labs["lab_c"], labs["lab_d"]

    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    ensure(size < MAX_BYTES, f"the folder is {size} bytes, not under {MAX_BYTES}")

    # layouts, dtypes, identifiers, obs columns
    ensure(isinstance(a.X, sp.csr_matrix) and a.X.dtype == np.float32, "lab_a X: CSR float32")
    ensure(isinstance(b.X, sp.csr_matrix) and b.X.dtype == np.int32, "lab_b X: CSR int32")
    ensure(isinstance(c.X, sp.csc_matrix) and c.X.dtype == np.float32, "lab_c X: CSC float32")
    ensure(isinstance(d.X, np.ndarray) and d.X.dtype == np.float32, "lab_d X: dense float32")
    ensure({"cell_type", "donor", "assay"} <= set(a.obs), "lab_a obs columns")
    ensure(a.obs["donor"].nunique() == 2, "lab_a has 2 donors")
    ensure({"celltype", "donor_id", "assay"} <= set(b.obs), "lab_b obs columns")
    ensure({"CellType", "sample"} <= set(c.obs), "lab_c obs columns")
    ensure(all(v.startswith("SG") for v in a.var_names), "lab_a var_names are symbols")
    ensure(all(v.startswith("ENSG9") and "." in v for v in b.var_names), "lab_b: versioned ids")
    ensure(all(v.startswith("ENSG9") and "." not in v for v in c.var_names), "lab_c: bare ids")
    for name, lab in labs.items():
        ensure(lab.obs_names.is_unique and lab.var_names.is_unique, "unique names")
        info = planted["files"][f"{name}.h5ad"]
        ensure((lab.n_obs, lab.n_vars) == (info["n_obs"], info["n_vars"]), f"{name} shape")
        types = lab.obs[info["label_column"]].astype(str).value_counts().to_dict()
        ensure(types == info["cell_types"], f"{name} cell types")
        x = lab.X.data if sp.issparse(lab.X) else lab.X
        ensure(bool(np.all(x >= 0) and np.all(x == np.round(x))), "X holds counts")

    # gene subsets: b and c differ, repeated symbols only in c
    sym = {k: _symbols(v) for k, v in labs.items()}
    ensure(len(set(sym["lab_b"])) == N_B_GENES, "lab_b gene count")
    ensure(len(set(sym["lab_c"])) == N_C_GENES, "lab_c gene count")
    ensure(set(sym["lab_b"]) != set(sym["lab_c"]), "lab_b and lab_c lack different genes")
    counts = pd.Series(sym["lab_c"]).value_counts()
    ensure(
        sorted(counts[counts > 1].index) == sorted(planted["duplicated_symbols"]["symbols"]),
        "repeated symbols in lab_c",
    )
    shared = sorted(set.intersection(*(set(s) for s in sym.values())))
    ensure(len(shared) == planted["genes"]["shared_by_symbol_all_files"], "shared genes")

    # exact copies: hash every cell on lab_c's genes (summed by symbol), across all files
    c_syms = np.array(sorted(set(sym["lab_c"])))
    rows_c = _by_symbol(c, c_syms)
    rows_a = _by_symbol(a, c_syms)
    hashes_a: dict[bytes, int] = {}
    for i, r in enumerate(rows_a):
        hashes_a.setdefault(hashlib.sha1(r.tobytes()).digest(), i)
    found = [
        (j, hashes_a[h])
        for j, r in enumerate(rows_c)
        if (h := hashlib.sha1(r.tobytes()).digest()) in hashes_a
    ]
    want = [(p["lab_c_row"], p["lab_a_row"]) for p in planted["exact_copies"]["pairs"]]
    ensure(found == want and len(found) == N_COPIES, f"{len(found)} copies found")
    for j, i in found:
        ensure(c.obs_names[j] != a.obs_names[i], "copies are renamed")
        ensure(_label(c)[j] == _label(a)[i], "copies keep their type")
    # and no other pair of cells anywhere is identical on the genes all files share
    shared_arr = np.array(shared)
    seen: dict[bytes, tuple[str, int]] = {}
    dup_pairs: set[tuple[tuple[str, int], tuple[str, int]]] = set()
    for name, lab in labs.items():
        for i, r in enumerate(_by_symbol(lab, shared_arr)):
            h = hashlib.sha1(r.tobytes()).digest()
            if h in seen:
                dup_pairs.add((seen[h], (name, i)))
            else:
                seen[h] = (name, i)
    ensure(
        dup_pairs == {(("lab_a", i), ("lab_c", j)) for j, i in want},
        f"{len(dup_pairs)} identical pairs on the shared genes",
    )

    # the rare type: only in lab_d, the planted count
    for name, lab in labs.items():
        n_rare = int((_label(lab) == RARE).sum())
        ensure(
            n_rare == (planted["rare"]["count"] if name == "lab_d" else 0), f"{name}: {n_rare} rare"
        )
    ensure(planted["rare"]["count"] == LAB_D_COUNTS[RARE], "rare count")
    ensure(list(d.obs_names[_label(d) == RARE]) == planted["rare"]["obs_names"], "rare names")

    # barcodes shared by lab_c and lab_d, all of them different cells
    collisions = sorted(set(c.obs_names) & set(d.obs_names))
    ensure(collisions == planted["obs_name_collisions"]["obs_names"], "lab_c/lab_d barcodes")

    # the types separate the way the default embedder sees them (CP10k on the shared genes,
    # log1p, 50 PCs): 5-NN leave-one-out labels; the rare cells form a cluster of their own
    x = np.vstack([_by_symbol(lab, shared_arr) for lab in labs.values()]).astype(np.float64)
    labels = np.concatenate([_label(lab) for lab in labs.values()])
    x = np.log1p(x / x.sum(1, keepdims=True) * 1e4)
    x -= x.mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    pcs = u[:, :50] * s[:50]
    sq = (pcs**2).sum(1)
    dist = sq[:, None] + sq[None, :] - 2 * pcs @ pcs.T
    np.fill_diagonal(dist, np.inf)
    nn = np.argsort(dist, axis=1)[:, :5]
    pred = np.array([pd.Series(v).mode().iloc[0] for v in labels[nn]])
    accuracy = float((pred == labels).mean())
    ensure(accuracy > 0.95, f"5-NN accuracy {accuracy}")
    rare = labels == RARE
    ensure(bool(np.all(labels[nn[rare, :3]] == RARE)), "rare cells' neighbours are rare")
    # no other cell is nearer to a rare cell than the two farthest-apart rare cells are
    within = dist[np.ix_(rare, rare)][~np.eye(int(rare.sum()), dtype=bool)].max()
    ensure(dist[np.ix_(rare, ~rare)].min() > within, "rare cells form their own cluster")
    cent = {t: pcs[labels == t].mean(0) for t in TYPES}
    rare_gap = min(float(np.linalg.norm(cent[RARE] - cent[t])) for t in TYPES if t != RARE)
    rare_radius = float(np.linalg.norm(pcs[rare] - cent[RARE], axis=1).mean())
    ensure(rare_gap > 2 * rare_radius, f"rare gap {rare_gap} vs radius {rare_radius}")
    return {
        "bytes": size,
        "copies": len(found),
        "rare": int(rare.sum()),
        "shared_genes": len(shared),
        "knn_accuracy": round(accuracy, 4),
        "rare_centroid_gap": round(rare_gap, 2),
        "rare_mean_radius": round(rare_radius, 2),
    }


# --------------------------------------------------------------------------- main


def dump_json(obj: object) -> str:
    """Indented JSON with every innermost object or list on one line."""
    text = json.dumps(obj, indent=1)
    flat = re.compile(r"([{\[])\n\s*([^{}\[\]]*?)\n\s*([}\]])")
    return (
        flat.sub(lambda m: m[1] + " ".join(x.strip() for x in m[2].split("\n")) + m[3], text) + "\n"
    )


README = """\
# scurate example corpus (synthetic)

A tiny, **entirely synthetic** corpus of blood single cells in four .h5ad "labs", shipped so
the quick start and the tests need no download. Nothing here was measured: genes, cells and
counts are made up by `python tools/make_example.py` (numpy seed {seed}); running it again
rewrites this folder with the same contents. `planted.json` lists every planted fact.

**Genes** are synthetic: {n_genes} symbols `SG0001`..`{last_sym}` and Ensembl-format ids
`ENSG90000000001`..`{last_id}` (a range that exists in no Ensembl release), one
fixed mapping between them (gene *i* is `SG{{i:04d}}` = `ENSG9{{i:010d}}`, each with a fixed
version suffix that lab_b shows). Two extra ids exist only in lab_c, as "alternate loci"
whose symbols repeat existing ones: {alt_ids}.

**Cells**: 8 types, raw integer UMI counts (negative binomial around a per-type expression
program over a shared background; per-cell lognormal library size; a mild per-lab gene-wise
shift), shallow (a few hundred UMIs, ~90 detected genes per cell) so the folder stays small:
T cell, B cell, NK cell, classical monocyte, non-classical monocyte, dendritic cell, platelet,
and the RARE plasmacytoid dendritic cell. Type labels use the same words in every file; the
column that holds them does not. The types separate after CP10k + log1p + PCA on the shared
genes, and the rare cells form a cluster of their own.

| file | cells | genes | var_names | X | obs columns |
|---|---|---|---|---|---|
{table}

## Traps planted on purpose

* **Gene identifiers differ in kind.** lab_a and lab_d name genes by symbol only; lab_b by
  versioned Ensembl ids (`ENSG90000000001.3`, symbols in `var['gene_symbols']`); lab_c by
  unversioned ids (symbols in `var['feature_name']`). All four files can meet only on
  symbols.
* **Gene subsets and orders differ.** lab_b and lab_c each lack a different 15 % of the
  genes, lab_d lacks 4 %; every file orders its genes differently. {shared} symbols are in
  all four files (every marker gene among them).
* **Repeated symbols in lab_c**: {dups} each occur twice in `var['feature_name']`
  (two ids per symbol). anndata warns about non-unique var_names on every read, which
  fails under `pytest -W error`, so lab_c keeps its ids as var_names and the repeat is in
  the symbol column. The extra features hold zeros in the copied cells below, so a copied
  cell summed by symbol still equals its lab_a original.
* **{n_copies} exact copies**: {n_copies} lab_c cells (those with `sample == "C3"`) are
  lab_a cells re-deposited: identical counts on every gene lab_c has (genes lab_c lacks are
  simply absent) under new obs names, 10x barcodes instead of lab_a's `a_cell_0001` style
  (e.g. lab_c row {ex_c_row} `{ex_c}` is lab_a row {ex_a_row} `{ex_a}`). Sorted by barcode,
  they are scattered through lab_c; `planted.json` lists all {n_copies} pairs with rows
  (0-based). No other two cells in the corpus are identical, even on the shared genes.
* **Rare type**: {n_rare} plasmacytoid dendritic cells, all in lab_d (obs names in
  `planted.json`), none anywhere else.
* **Obs names collide across files**: {n_coll} lab_d barcodes also occur in lab_c; they are
  different cells. Obs names are unique within each file.
* **Layouts and dtypes differ**: CSR float32 (lab_a), CSR int32 (lab_b), CSC float32
  (lab_c), dense float32 (lab_d); all hold non-negative integers.

Every file reads with `anndata.read_h5ad` without a warning. Folder size: {size} bytes.

## License

Generated data with no third-party content: dedicated to the public domain under CC0 1.0
(https://creativecommons.org/publicdomain/zero/1.0/).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="only run the self-check")
    args = ap.parse_args(argv)
    out: Path = args.out
    if not args.check:
        labs, planted = build(np.random.default_rng(SEED))
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for name, lab in labs.items():
            lab.write_h5ad(out / f"{name}.h5ad", compression="gzip", compression_opts=9)
        (out / "planted.json").write_text(dump_json(planted))
        layout = {
            "lab_a": "CSR float32",
            "lab_b": "CSR int32",
            "lab_c": "CSC float32",
            "lab_d": "dense float32",
        }
        names = {
            "lab_a": "symbols",
            "lab_b": "Ensembl ids, versioned",
            "lab_c": "Ensembl ids",
            "lab_d": "symbols",
        }
        rows = []
        for name, lab in labs.items():
            cols = ", ".join(f"`{c}`" for c in lab.obs.columns)
            n_types = lab.obs.iloc[:, 0].nunique()
            rows.append(
                f"| {name}.h5ad | {lab.n_obs} ({n_types} types) | {lab.n_vars} | "
                f"{names[name]} | {layout[name]} | {cols} |"
            )
        first = planted["exact_copies"]["pairs"][0]
        readme = README.format(
            n_genes=N_GENES,
            last_sym=f"SG{N_GENES:04d}",
            last_id=f"ENSG9{N_GENES:010d}",
            alt_ids=" and ".join(
                f"`{v[1]}` (`{k}`)" for k, v in planted["duplicated_symbols"]["symbols"].items()
            ),
            seed=SEED,
            table="\n".join(rows),
            shared=planted["genes"]["shared_by_symbol_all_files"],
            dups=" and ".join(f"`{s}`" for s in planted["duplicated_symbols"]["symbols"]),
            n_copies=N_COPIES,
            ex_c=first["lab_c_obs"],
            ex_a=first["lab_a_obs"],
            ex_c_row=first["lab_c_row"],
            ex_a_row=first["lab_a_row"],
            n_rare=planted["rare"]["count"],
            n_coll=N_BARCODE_COLLISIONS,
            size="{size}",
        )
        (out / "README.md").write_text(readme)
        # the size line includes the README itself: write it, measure, rewrite with the total
        total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
        total += len(str(total)) - len("{size}")
        (out / "README.md").write_text(readme.replace("{size}", str(total)))
    facts = self_check(out)
    print(json.dumps(facts, indent=1))
    for p in sorted(out.iterdir()):
        print(f"{p.stat().st_size:>9}  {p.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

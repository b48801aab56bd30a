"""Embeddings: stored obsm entries and the default PCA embedder."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scurate._compute.embed import (
    from_obsm,
    highly_variable,
    normalized_dispersion,
    pca_embedding,
)
from scurate._data.sources import open_sources
from scurate.errors import InputError


def with_obsm(path: Path, values: np.ndarray, key: str = "X_pca") -> Path:
    adata = ad.AnnData(np.zeros((len(values), 3), dtype=np.float32))
    adata.obsm[key] = values
    adata.write_h5ad(path)
    return path


def test_obsm_is_stacked_in_source_order(tmp_path: Path) -> None:
    a = with_obsm(tmp_path / "a.h5ad", np.arange(12, dtype=np.float32).reshape(4, 3))
    b = with_obsm(tmp_path / "b.h5ad", -np.ones((2, 3), dtype=np.float64))
    emb = from_obsm(open_sources([a, b]), "X_pca")
    assert emb.values.dtype == np.float32 and emb.values.flags.c_contiguous
    np.testing.assert_array_equal(emb.values[:4], np.arange(12).reshape(4, 3))
    np.testing.assert_array_equal(emb.values[4:], -1)


def test_obsm_widths_must_agree(tmp_path: Path) -> None:
    a = with_obsm(tmp_path / "a.h5ad", np.zeros((4, 3), dtype=np.float32))
    b = with_obsm(tmp_path / "b.h5ad", np.zeros((4, 5), dtype=np.float32))
    with pytest.raises(
        InputError, match=r"b.h5ad: obsm\['X_pca'\] has 5 columns but .*a.h5ad has 3"
    ):
        from_obsm(open_sources([a, b]), "X_pca")


def test_obsm_nan_rows_name_the_cell(tmp_path: Path) -> None:
    values = np.zeros((6, 3), dtype=np.float32)
    values[4, 2] = np.nan
    values[5, 0] = np.inf
    path = with_obsm(tmp_path / "a.h5ad", values)
    with pytest.raises(
        InputError, match=r"obsm\['X_pca'\] row 4 \(cell '4'\) has NaN or inf \(2 such rows\)"
    ):
        from_obsm(open_sources([path]), "X_pca")


def test_pca_meets_across_identifier_kinds_and_separates_types(two_labs: list[Path]) -> None:
    sources = open_sources(two_labs)
    emb = pca_embedding(sources, rng=np.random.default_rng(0), n_comps=10)
    assert emb.values.shape == (1598, 10)
    assert emb.info["gene_id_kind"] == "symbol"
    assert emb.info["n_genes_shared"] == 270
    assert emb.info["genes_found_in"] == {"lab_a": "var_names", "lab_b": "var['gene_symbols']"}
    assert emb.info["normalized_sources"] == []
    types = np.concatenate([s.read_obs()["cell_type"].astype(str).to_numpy() for s in sources])
    centroids = {t: emb.values[types == t].mean(axis=0) for t in set(types)}
    nearest = [min(centroids, key=lambda t: np.linalg.norm(v - centroids[t])) for v in emb.values]
    assert np.mean(np.array(nearest) == types) > 0.98, "types separate on the shared genes"
    assert emb.n_counts is not None and emb.n_counts[0] > 0


def test_pca_is_deterministic_by_seed(two_labs: list[Path]) -> None:
    sources = open_sources(two_labs)
    one = pca_embedding(sources, rng=np.random.default_rng(3), n_comps=8, fit_cells=500)
    two = pca_embedding(sources, rng=np.random.default_rng(3), n_comps=8, fit_cells=500)
    np.testing.assert_array_equal(one.values, two.values)
    assert one.info["fit_cells"] == 500


def test_normalized_x_is_used_as_it_is_and_reported(two_labs: list[Path], tmp_path: Path) -> None:
    b = ad.read_h5ad(two_labs[1])
    b.X = b.X.multiply(1e4 / b.X.sum(axis=1)).log1p().tocsr().astype(np.float32)
    b.write_h5ad(tmp_path / "lab_b_lognorm.h5ad")
    sources = open_sources([two_labs[0], tmp_path / "lab_b_lognorm.h5ad"])
    emb = pca_embedding(sources, rng=np.random.default_rng(0), n_comps=5)
    assert emb.info["normalized_sources"] == ["lab_b_lognorm"]


def test_highly_variable_prefers_genes_that_vary() -> None:
    rng = np.random.default_rng(0)
    flat = rng.poisson(rng.uniform(0.5, 10.0, size=300), size=(400, 300))
    on = rng.random((400, 1)) < 0.5  # five genes switched on in half of the cells
    varied = rng.poisson(rng.uniform(2.0, 8.0, size=5), size=(400, 5)) * on * 2
    sample = sp.csr_matrix(np.log1p(np.hstack([flat, varied]).astype(np.float32)))
    # as scanpy's seurat flavour: flat gene 167 scores high within its bin of 41 genes and
    # takes the fifth place (scanpy 1.12.4 picks the same 5, and the same 6)
    assert highly_variable(sample, 5).tolist() == [167, 300, 301, 302, 303]
    assert highly_variable(sample, 6).tolist() == [167, 300, 301, 302, 303, 304]


def test_normalized_dispersion_by_hand() -> None:
    """Four genes over four cells (values before log1p): A and C share the bin of mean 1, D is
    never expressed (no dispersion), E is alone in the top bin (scored 1)."""
    counts = np.array(
        [  # A  C  D  E
            [0, 0, 0, 8],
            [2, 0, 0, 0],
            [0, 0, 0, 0],
            [2, 4, 0, 0],
        ],
        dtype=np.float32,
    )
    sample = sp.csr_matrix(np.log1p(counts))
    # A: mean 1, var 4/3 (ddof 1); C: mean 1, var 4; E: mean 2, var 16. Twenty equal-width bins
    # over log1p(mean) from ~0 (D) to log 3 (E): A and C both at log 2, E alone at the top.
    a, c = np.log(4 / 3), np.log(4.0)
    z = (a - (a + c) / 2) / (abs(c - a) / np.sqrt(2))  # the bin's mean and sample std
    got = normalized_dispersion(sample)
    np.testing.assert_allclose(got[[0, 1, 3]], [z, -z, 1.0], rtol=1e-6)
    assert np.isnan(got[2])
    assert highly_variable(sample, 1).tolist() == [3]
    assert highly_variable(sample, 2).tolist() == [1, 3]
    assert highly_variable(sample, 100).tolist() == [0, 1, 3]  # only genes with a score


def scanpy_seurat_reference(sample: sp.csr_matrix, n_top: int) -> tuple[np.ndarray, np.ndarray]:
    """scanpy 1.12's ``highly_variable_genes(flavor="seurat", n_top_genes=n_top)`` step by
    step, slowly (per-gene loops, pandas ``cut`` and ``groupby`` as scanpy calls them):
    the normalized dispersions and the mask of genes kept."""
    x = np.expm1(sample.toarray())  # float32, as scanpy's expm1 of a float32 matrix
    n = x.shape[0]
    mean = np.array([sum(float(v) for v in col) / n for col in x.T])
    var = np.array([sum(float(v * v) for v in col) / n for col in x.T]) - mean**2
    var *= n / (n - 1)
    mean[mean == 0] = 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = var / mean
        dispersion[dispersion == 0] = np.nan
        dispersion = np.log(dispersion)
    df = pd.DataFrame({"means": np.log1p(mean), "dispersions": dispersion})
    df["mean_bin"] = pd.cut(df["means"], bins=20)
    stats = df.groupby("mean_bin", observed=True)["dispersions"].agg(avg="mean", dev="std")
    single = stats["dev"].isnull()  # one gene (with a dispersion) in the bin
    stats.loc[single, "dev"] = stats.loc[single, "avg"]
    stats.loc[single, "avg"] = 0
    per_gene = stats.loc[df["mean_bin"]].set_index(df.index)
    norm = ((df["dispersions"] - per_gene["avg"]) / per_gene["dev"]).to_numpy()
    known = np.sort(norm[~np.isnan(norm)])[::-1]
    cutoff = known[min(n_top, len(known)) - 1]
    return norm, np.nan_to_num(norm, nan=-np.inf) >= cutoff


def test_highly_variable_matches_a_slow_scanpy_reference() -> None:
    """A seeded sparse matrix with what scanpy's steps treat specially: genes never expressed
    (no dispersion), a gene far above the others' means (alone in its bin: scored 1), genes
    expressed in one cell, and two identical genes tied at the cutoff (both kept, so one gene
    more than asked)."""
    rng = np.random.default_rng(11)
    n_cells, n_genes = 300, 400
    means = rng.gamma(0.5, 2.0, size=n_genes)
    counts = rng.poisson(means * rng.lognormal(0, 0.6, size=(n_cells, 1)))
    counts[:, :10] = 0  # never expressed
    counts[:, 10] = rng.poisson(400.0, size=n_cells)  # alone in the top bin
    counts[:, 11:14] = 0
    counts[rng.integers(0, n_cells, 3), [11, 12, 13]] = 5  # one cell each
    counts = np.hstack([counts, counts[:, [200]]]).astype(np.float32)  # gene 400 = gene 200
    totals = counts.sum(axis=1, keepdims=True)
    sample = sp.csr_matrix(np.log1p(counts * (1e4 / totals)).astype(np.float32))

    norm, _ = scanpy_seurat_reference(sample, 50)
    got = normalized_dispersion(sample)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(norm))
    np.testing.assert_allclose(got[~np.isnan(got)], norm[~np.isnan(norm)], rtol=1e-9, atol=1e-12)
    assert np.isnan(got[:10]).all() and got[10] == 1.0

    for n_top in (1, 20, 50, 200, 400, 1000):
        _, keep = scanpy_seurat_reference(sample, n_top)
        assert highly_variable(sample, n_top).tolist() == np.flatnonzero(keep).tolist(), n_top
    assert got[200] == got[400]
    tied = int(np.sum(got > got[200]))  # genes above the tied pair
    _, keep = scanpy_seurat_reference(sample, tied + 1)
    assert np.flatnonzero(keep).size == tied + 2
    assert highly_variable(sample, tied + 1).tolist() == np.flatnonzero(keep).tolist()
    assert {200, 400} <= set(highly_variable(sample, tied + 1).tolist())

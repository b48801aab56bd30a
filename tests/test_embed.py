"""Embeddings: stored obsm entries and the default PCA embedder."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from scurate._compute.embed import from_obsm, highly_variable, pca_embedding
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
    assert set(highly_variable(sample, 5).tolist()) == {300, 301, 302, 303, 304}

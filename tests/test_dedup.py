"""Exact duplicates hidden behind every difference two deposits of one dataset can have."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scurate._compute.dedup import MIN_GENES, find_exact_duplicates
from scurate._data.sources import open_sources
from scurate.errors import InputError

from conftest import TYPES, ensembl_ids, gene_symbols, make_adata, write_h5ad


def copies_of(
    base: ad.AnnData, rows: np.ndarray, genes: np.ndarray, names: list[str]
) -> ad.AnnData:
    """Rows of ``base`` on a subset/reordering of its genes, with new obs names."""
    sub = base[rows][:, genes].copy()
    sub.obs_names = names
    return sub


def found_pairs(paths: list[Path]) -> set[tuple[str, str]]:
    sources = open_sources(paths)
    result = find_exact_duplicates(sources)
    ids = np.concatenate([[f"{s.dataset_id}/{n}" for n in s.obs_names] for s in sources])
    return {(ids[i], ids[j]) for i, j in enumerate(result.dup_of) if j >= 0}


@pytest.fixture
def atlas(programs: np.ndarray) -> ad.AnnData:
    """The kept deposit: symbols in var_names and Ensembl ids in var['gene_ids']."""
    a = make_adata(np.random.default_rng(1), programs, TYPES, [150, 100, 80, 120, 8], prefix="x")
    a.var["gene_ids"] = ensembl_ids()
    return a


def test_copies_behind_order_subset_ids_layout_dtype_and_names(
    tmp_path: Path, atlas: ad.AnnData, programs: np.ndarray
) -> None:
    rng = np.random.default_rng(2)
    atlas_path = write_h5ad(atlas, tmp_path / "atlas.h5ad")
    planted: set[tuple[str, str]] = set()
    # 1: 90 % of the genes, shuffled, Ensembl ids with versions in var_names, CSC int32,
    #    barcodes in another format
    genes = rng.permutation(np.sort(rng.choice(len(gene_symbols()), 270, replace=False)))
    rows = rng.choice(atlas.n_obs, 40, replace=False)
    one = copies_of(atlas, rows, genes, [f"BC{i:04d}-1" for i in range(40)])
    one.var_names = [f"{e}.3" for e in ensembl_ids()[genes]]
    one.X = sp.csc_matrix(one.X.astype(np.int32))
    write_h5ad(one, tmp_path / "subset_csc.h5ad")
    planted |= {
        (f"subset_csc/BC{i:04d}-1", f"atlas/{atlas.obs_names[r]}") for i, r in enumerate(rows)
    }
    # 2: dense float64 X, all genes in reverse order, Ensembl ids in a var column
    rows2 = rng.choice(atlas.n_obs, 25, replace=False)
    genes2 = np.arange(len(gene_symbols()))[::-1]
    two = copies_of(atlas, rows2, genes2, [f"lab2_{i}" for i in range(25)])
    two.var = pd.DataFrame(
        {"ensembl_id": ensembl_ids()[genes2]}, index=[f"g{i}" for i in range(len(genes2))]
    )
    two.X = np.asarray(two.X.toarray(), dtype=np.float64)
    write_h5ad(two, tmp_path / "dense.h5ad")
    planted |= {(f"dense/lab2_{i}", f"atlas/{atlas.obs_names[r]}") for i, r in enumerate(rows2)}
    # unrelated cells from the same programs: must find nothing there
    other = make_adata(rng, programs, TYPES, [30, 30, 0, 0, 0], prefix="o")
    other.var["gene_ids"] = ensembl_ids()
    write_h5ad(other, tmp_path / "other.h5ad")

    paths = [
        atlas_path,
        tmp_path / "subset_csc.h5ad",
        tmp_path / "dense.h5ad",
        tmp_path / "other.h5ad",
    ]
    assert found_pairs(paths) == planted


def test_duplicated_symbols_and_symbol_only_sources(tmp_path: Path, atlas: ad.AnnData) -> None:
    rng = np.random.default_rng(3)
    write_h5ad(atlas, tmp_path / "atlas.h5ad")
    rows = rng.choice(atlas.n_obs, 30, replace=False)
    copy = copies_of(
        atlas, rows, rng.permutation(len(gene_symbols())), [f"c{i}" for i in range(30)]
    )
    symbols = copy.var_names.to_numpy().copy()
    symbols[:2] = symbols[2]  # three columns share one symbol: left out of the comparison
    copy.var = pd.DataFrame(
        {"gene_symbols": symbols}, index=[f"col{i}" for i in range(len(symbols))]
    )
    copy.X = copy.X.astype(np.float32)
    write_h5ad(copy, tmp_path / "symbols.h5ad")
    paths = [tmp_path / "atlas.h5ad", tmp_path / "symbols.h5ad"]
    want = {(f"symbols/c{i}", f"atlas/{atlas.obs_names[r]}") for i, r in enumerate(rows)}
    assert found_pairs(paths) == want
    result = find_exact_duplicates(open_sources(paths))
    assert result.info["gene_id_kind"] == "symbol"
    assert result.info["n_ambiguous_genes_left_out"] == 1


def test_equal_on_shared_genes_but_not_on_genes_both_files_measured(
    tmp_path: Path, atlas: ad.AnnData
) -> None:
    """A third file with few genes shrinks the hashed space; two cells that agree there but
    differ on genes their own two files measured are not merged."""
    rng = np.random.default_rng(4)
    write_h5ad(atlas, tmp_path / "a.h5ad")
    twin = atlas[:10].copy()
    twin.obs_names = [f"t{i}" for i in range(10)]
    x = twin.X.toarray()
    x[:, 250:] += 1  # differs on genes 250.. only
    twin.X = sp.csr_matrix(x)
    write_h5ad(twin, tmp_path / "b.h5ad")
    narrow = atlas[rng.choice(atlas.n_obs, 5, replace=False)][:, :250].copy()
    narrow.obs_names = [f"n{i}" for i in range(5)]
    write_h5ad(narrow, tmp_path / "c.h5ad")
    paths = [tmp_path / "a.h5ad", tmp_path / "b.h5ad", tmp_path / "c.h5ad"]
    pairs = found_pairs(paths)
    assert not any(p[0].startswith("b/") for p in pairs)
    assert {p[0] for p in pairs} == {f"c/n{i}" for i in range(5)}
    info = find_exact_duplicates(open_sources(paths)).info
    assert info["n_hash_matches_rejected"] == 10
    assert info["n_genes_hashed"] == 250


def test_low_count_cells_are_never_called_duplicates(tmp_path: Path) -> None:
    """Near-empty droplets with the same few ambient counts are not one cell twice."""
    genes = gene_symbols(100)
    x = np.zeros((40, 100), dtype=np.float32)
    x[:, :5] = 1  # 40 droplets: one count on each of the 5 most abundant genes
    x[:20, 5 : 5 + MIN_GENES - 6] = 2  # 20 with 19 genes: still below the threshold
    rich = np.random.default_rng(5).poisson(3, size=(5, 100)).astype(np.float32)
    x = np.vstack([x, rich, rich])  # and 5 real cells deposited twice
    cells = ad.AnnData(sp.csr_matrix(x), var=pd.DataFrame(index=genes))
    cells.obs_names = [f"d{i}" for i in range(len(x))]
    write_h5ad(cells, tmp_path / "droplets.h5ad")
    result = find_exact_duplicates(open_sources([tmp_path / "droplets.h5ad"]))
    assert np.flatnonzero(result.dup_of >= 0).tolist() == list(range(45, 50))
    assert result.dup_of[45:50].tolist() == list(range(40, 45))
    assert result.info["n_below_min_genes"] == 40


def test_kept_copy_is_in_the_file_that_measured_more_genes(
    tmp_path: Path, atlas: ad.AnnData
) -> None:
    subset = copies_of(atlas, np.arange(20), np.arange(200), [f"s{i}" for i in range(20)])
    write_h5ad(subset, tmp_path / "a_subset.h5ad")  # opened first, but measured fewer genes
    write_h5ad(atlas, tmp_path / "b_atlas.h5ad")
    pairs = found_pairs([tmp_path / "a_subset.h5ad", tmp_path / "b_atlas.h5ad"])
    assert pairs == {(f"a_subset/s{i}", f"b_atlas/{atlas.obs_names[i]}") for i in range(20)}


def test_sources_that_are_not_counts_are_skipped_and_reported(
    tmp_path: Path, atlas: ad.AnnData
) -> None:
    write_h5ad(atlas, tmp_path / "atlas.h5ad")
    normalized = atlas[:30].copy()
    normalized.obs_names = [f"n{i}" for i in range(30)]
    normalized.X = normalized.X.astype(np.float32)
    normalized.X.data = np.log1p(normalized.X.data)
    write_h5ad(normalized, tmp_path / "normalized.h5ad")
    # counts in the first chunk that x_is_counts looks at, one fraction in the last row
    x = np.tile(atlas.X.toarray(), (5, 1)).astype(np.float32)
    x[-1, 0] = 0.5
    late = ad.AnnData(sp.csr_matrix(x), var=atlas.var)
    late.obs_names = [f"l{i}" for i in range(late.n_obs)]
    assert late.n_obs > 2048
    write_h5ad(late, tmp_path / "late.h5ad")
    result = find_exact_duplicates(
        open_sources(
            [tmp_path / "atlas.h5ad", tmp_path / "normalized.h5ad", tmp_path / "late.h5ad"]
        )
    )
    skipped = result.info["skipped_sources"]
    assert skipped["normalized"].startswith("no integer counts in X, .raw.X or layers")
    assert skipped["late"].startswith("X is not integer counts (1 values")
    assert result.info["counts_from"] == {"atlas": "X", "normalized": None, "late": "X"}
    assert (result.dup_of >= 0).sum() == 0


def test_min_genes_must_be_positive(tmp_path: Path, atlas: ad.AnnData) -> None:
    write_h5ad(atlas, tmp_path / "atlas.h5ad")
    with pytest.raises(InputError, match="dup_min_genes=0: must be at least 1"):
        find_exact_duplicates(open_sources([tmp_path / "atlas.h5ad"]), min_genes=0)

"""The common gene space: identifier kinds, versions, subsets, order and duplicated symbols."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scurate._data.genes import common_genes, gene_keys
from scurate._data.sources import GeneTable, open_sources
from scurate.errors import InputError


def table(names: list[str], **columns: list[str]) -> GeneTable:
    return GeneTable(
        np.array(names, dtype=object), {k: np.array(v, dtype=object) for k, v in columns.items()}
    )


def test_ensembl_ids_are_found_with_or_without_version() -> None:
    keys = gene_keys(
        table(["ENSG00000000003.15", "ENSG00000000005"], gene_symbols=["TSPAN6", "TNMD"])
    )
    assert list(keys.ensembl) == ["ENSG00000000003", "ENSG00000000005"]  # type: ignore[arg-type]
    assert keys.ensembl_from == "var_names"
    assert list(keys.symbols) == ["TSPAN6", "TNMD"]  # type: ignore[arg-type]
    assert keys.symbols_from == "var['gene_symbols']"


def test_ids_in_a_column_and_symbols_in_var_names() -> None:
    keys = gene_keys(table(["Gcg", "Ins1"], gene_ids=["ENSMUSG00000000394", "ENSMUSG00000035804"]))
    assert keys.symbols_from == "var_names" and keys.ensembl_from == "var['gene_ids']"


def write(path: Path, x: np.ndarray, var: pd.DataFrame) -> Path:
    ad.AnnData(sp.csr_matrix(x.astype(np.float32)), var=var).write_h5ad(path)
    return path


def test_projection_reorders_subsets_and_sums_duplicates(tmp_path: Path) -> None:
    a = write(
        tmp_path / "a.h5ad", np.array([[1, 2, 3, 4]]), pd.DataFrame(index=["G1", "G2", "G3", "G4"])
    )
    var_b = pd.DataFrame({"feature_name": ["G3", "G1", "G3"]}, index=["x1", "x2", "x3"])
    b = write(tmp_path / "b.h5ad", np.array([[5, 6, 7]]), var_b)
    sources = open_sources([a, b])
    space = common_genes(sources)
    assert space.kind == "symbol" and list(space.genes) == ["G1", "G3"]
    rows = [next(s.iter_x())[1] @ p for s, p in zip(sources, space.projections, strict=True)]
    np.testing.assert_array_equal(rows[0].toarray(), [[1, 3]])
    np.testing.assert_array_equal(rows[1].toarray(), [[6, 12]])  # G3 twice: 5 + 7


def test_ids_only_and_symbols_only_share_no_genes(tmp_path: Path) -> None:
    a = write(
        tmp_path / "human.h5ad",
        np.ones((1, 2)),
        pd.DataFrame(index=["ENSG00000000003", "ENSG00000000005"]),
    )
    b = write(tmp_path / "mouse.h5ad", np.ones((1, 2)), pd.DataFrame(index=["Gcg", "Ins1"]))
    with pytest.raises(InputError) as err:
        common_genes(open_sources([a, b]))
    assert str(err.value) == (
        "sources share no genes: human.h5ad name genes by Ensembl id only and "
        "mouse.h5ad by symbol only"
    )


def test_same_kind_but_disjoint(tmp_path: Path) -> None:
    a = write(tmp_path / "a.h5ad", np.ones((1, 2)), pd.DataFrame(index=["G1", "G2"]))
    b = write(tmp_path / "b.h5ad", np.ones((1, 2)), pd.DataFrame(index=["G3", "G4"]))
    with pytest.raises(
        InputError, match="sources share no genes: no symbol is common to a.h5ad, b.h5ad"
    ):
        common_genes(open_sources([a, b]))

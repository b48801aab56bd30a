"""The common gene space: identifier kinds, versions, subsets, order and duplicated symbols."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scurate
from scurate._data import id_table
from scurate._data.genes import common_genes, gene_keys, onto_genes
from scurate._data.sources import GeneTable, open_sources
from scurate.errors import InputError

from conftest import N_GENES, make_counts, type_programs


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


def test_human_ids_and_mouse_symbols_share_no_genes_even_through_the_table(
    tmp_path: Path,
) -> None:
    a = write(
        tmp_path / "human.h5ad",
        np.ones((1, 2)),
        pd.DataFrame(index=["ENSG00000000003", "ENSG00000000005"]),
    )
    b = write(tmp_path / "mouse.h5ad", np.ones((1, 2)), pd.DataFrame(index=["Gcg", "Ins1"]))
    with pytest.raises(InputError) as err:
        common_genes(open_sources([a, b]))
    assert str(err.value) == (
        "sources share no genes, even through scurate's gene tables: human.h5ad (human) name "
        "genes by Ensembl id only and mouse.h5ad (mouse) by symbol only"
    )


def test_same_kind_but_disjoint(tmp_path: Path) -> None:
    a = write(tmp_path / "a.h5ad", np.ones((1, 2)), pd.DataFrame(index=["G1", "G2"]))
    b = write(tmp_path / "b.h5ad", np.ones((1, 2)), pd.DataFrame(index=["G3", "G4"]))
    with pytest.raises(
        InputError, match="sources share no genes: no symbol is common to a.h5ad, b.h5ad"
    ):
        common_genes(open_sources([a, b]))


# --- ids and symbols meeting through the shipped gene table ---------------------------------


def table_pairs(organism: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unambiguous (Ensembl id, symbol) pairs of the shipped table, seeded, by id."""
    pairs = sorted(id_table.load(organism).id_to_symbol.items())
    picked = np.sort(np.random.default_rng(seed).choice(len(pairs), size=n, replace=False))
    return (
        np.array([pairs[i][0] for i in picked], dtype=object),
        np.array([pairs[i][1] for i in picked], dtype=object),
    )


def write_cells(path: Path, x: sp.csr_matrix, genes: np.ndarray, prefix: str) -> Path:
    obs = pd.DataFrame(index=[f"{prefix}{i:04d}" for i in range(x.shape[0])])
    ad.AnnData(x, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)
    return path


def test_the_shipped_tables_keep_only_unambiguous_pairs_as_their_readme_says() -> None:
    readme = (Path(scurate.__file__).parent / "data" / "gene_ids" / "README.md").read_text()
    for organism in id_table.ORGANISMS:
        table = id_table.load(organism)
        row = next(line for line in readme.splitlines() if line.startswith(f"| {organism} |"))
        _, _, named, ambiguous, _, used = (c.strip() for c in row.strip("|").split("|"))
        assert table.n_named == int(named.replace(",", ""))
        assert table.n_ambiguous_symbols == int(ambiguous.replace(",", ""))
        assert len(table.id_to_symbol) == len(table.symbol_to_id) == int(used.replace(",", ""))
    human, mouse = id_table.load("human"), id_table.load("mouse")
    assert human.id_to_symbol["ENSG00000141510"] == "TP53"
    assert mouse.symbol_to_id["Trp53"] == "ENSMUSG00000059552"
    assert "MATR3" not in human.symbol_to_id  # GENCODE names two ids MATR3: neither is used
    mostly_mouse = ["ENSMUSG00000059552", "ENSMUSG00000000394.3", "ENSG00000141510", None]
    assert id_table.organism_of_ids(mostly_mouse) == "mouse"
    assert id_table.organism_of_ids(["ENSDARG00000000001"]) is None


def test_human_ids_only_and_symbols_only_select_together(tmp_path: Path) -> None:
    """One lab names genes by Ensembl id only, another by symbol only (a few symbols of its
    own, and 10 cells deposited again): they meet on the ids through the table, and the report
    says how many genes each reached that way."""
    ids, symbols = table_pairs("human", N_GENES, seed=1)
    rng = np.random.default_rng(7)
    programs = type_programs(np.random.default_rng(42), 3)
    types = np.repeat(np.arange(3), [120, 80, 40])
    x = make_counts(rng, programs, rng.permutation(types))
    ids_lab = write_cells(tmp_path / "ids_lab.h5ad", x[:150], ids, "i")
    keep = np.sort(rng.choice(N_GENES, size=250, replace=False))  # 250 of the 300 genes
    y = sp.vstack([x[150:], x[:10]]).tocsr()[:, keep]  # cells 0-9 deposited again
    own = np.array([f"LAB_GENE_{i}" for i in range(5)], dtype=object)  # in no table
    y = sp.hstack([y, sp.csr_matrix(rng.poisson(1.0, (y.shape[0], 5)).astype(np.float32))])
    symbols_lab = write_cells(
        tmp_path / "symbols_lab.h5ad", y.tocsr(), np.concatenate([symbols[keep], own]), "s"
    )

    selection = scurate.select([ids_lab, symbols_lab], 40, seed=0)
    embedding = selection.report["embedding"]
    assert embedding["gene_id_kind"] == "ensembl"
    assert embedding["n_genes_shared"] == 250
    assert embedding["genes_mapped_by_table"] == {"symbols_lab": 250}
    assert embedding["genes_found_in"] == {
        "ids_lab": "var_names",
        "symbols_lab": "var_names, through the human gene table",
    }
    manifest = selection.manifest
    copies = manifest.filter(manifest["exact_dup_of"].is_not_null()).sort("cell_id")
    assert copies["cell_id"].to_list() == [f"symbols_lab/s{90 + i:04d}" for i in range(10)]
    assert copies["exact_dup_of"].to_list() == [f"ids_lab/i{i:04d}" for i in range(10)]
    assert set(selection.selected["dataset_id"].to_list()) == {"ids_lab", "symbols_lab"}


def test_mouse_ids_and_symbols_meet_on_the_mouse_table(tmp_path: Path) -> None:
    ids, symbols = table_pairs("mouse", 40, seed=2)
    x = np.random.default_rng(0).poisson(2.0, (6, 40))
    a = write(tmp_path / "a.h5ad", x, pd.DataFrame(index=ids))
    # symbols in a var column, var_names made up: the symbols are what the table reads
    var_b = pd.DataFrame({"gene_symbols": symbols[::-1]}, index=[f"g{i}" for i in range(40)])
    b = write(tmp_path / "b.h5ad", x[:, ::-1], var_b)
    sources = open_sources([a, b])
    space = common_genes(sources)
    assert space.kind == "ensembl" and list(space.genes) == sorted(ids)
    assert space.mapped_by_table == [0, 40]
    assert space.found_in == ["var_names", "var['gene_symbols'], through the mouse gene table"]
    rows = [next(s.iter_x())[1] @ p for s, p in zip(sources, space.projections, strict=True)]
    np.testing.assert_array_equal(rows[0].toarray(), rows[1].toarray())


def test_ambiguous_symbols_and_unnamed_ids_among_symbols(tmp_path: Path) -> None:
    """MATR3 names two GENCODE ids: a symbol-only source's MATR3 meets neither. A symbol that
    is itself an id (CELLxGENE names an unnamed gene so) meets that id, not through the table."""
    ids, symbols = table_pairs("human", 20, seed=3)
    matr3 = ["ENSG00000015479", "ENSG00000280987"]
    unnamed = "ENSG00000999999"  # no symbol in any table
    a = write(tmp_path / "a.h5ad", np.ones((2, 23)), pd.DataFrame(index=[*ids, *matr3, unnamed]))
    b_names = [*symbols, "MATR3", f"{unnamed}.2"]
    b = write(tmp_path / "b.h5ad", np.ones((2, 22)), pd.DataFrame(index=b_names))
    space = common_genes(open_sources([a, b]))
    assert set(space.genes) == {*ids, unnamed}
    assert not set(matr3) & set(space.genes)
    assert space.mapped_by_table == [0, 20]


def test_symbols_of_no_table_and_same_organism_disjoint_are_one_line(tmp_path: Path) -> None:
    ids, symbols = table_pairs("human", 10, seed=4)
    a = write(tmp_path / "a.h5ad", np.ones((1, 5)), pd.DataFrame(index=ids[:5]))
    b = write(tmp_path / "b.h5ad", np.ones((1, 5)), pd.DataFrame(index=symbols[5:]))
    with pytest.raises(InputError) as err:
        common_genes(open_sources([a, b]))
    assert str(err.value) == (
        "sources share no genes: no Ensembl id is common to a.h5ad, b.h5ad, with the symbols "
        "of b.h5ad mapped through the human gene table"
    )
    c = write(tmp_path / "c.h5ad", np.ones((1, 2)), pd.DataFrame(index=["zz-1", "zz-2"]))
    with pytest.raises(InputError) as err:
        common_genes(open_sources([a, c]))
    assert str(err.value) == (
        "sources share no genes, even through scurate's gene tables: a.h5ad (human) name "
        "genes by Ensembl id only and c.h5ad (neither human nor mouse) by symbol only"
    )


def test_onto_a_reference_of_the_other_kind_goes_through_the_table(tmp_path: Path) -> None:
    ids, symbols = table_pairs("human", 12, seed=6)
    by_symbol = write(tmp_path / "s.h5ad", np.ones((1, 12)), pd.DataFrame(index=symbols))
    by_id = write(tmp_path / "i.h5ad", np.ones((1, 12)), pd.DataFrame(index=ids))
    onto_ids = onto_genes(open_sources([by_symbol, by_id]), ids[:8], "ensembl")
    assert onto_ids.mapped_by_table == [8, 0]
    assert onto_ids.found_in == ["var_names, through the human gene table", "var_names"]
    onto_symbols = onto_genes(open_sources([by_id]), symbols[2:], "symbol")
    assert onto_symbols.mapped_by_table == [10]
    rows = next(open_sources([by_id])[0].iter_x())[1] @ onto_symbols.projections[0]
    np.testing.assert_array_equal(rows.toarray(), np.ones((1, 10)))
    mouse_ids, _ = table_pairs("mouse", 5, seed=6)
    with pytest.raises(InputError, match=r"s.h5ad: shares none of the reference's 5 genes"):
        onto_genes(open_sources([by_symbol]), mouse_ids, "ensembl")

"""A common gene space across sources whose gene identifiers differ in kind.

Each source's genes are found as Ensembl ids (in var_names or a var column, version suffix
dropped) and/or symbols (a symbol column, or var_names that are not Ensembl ids). Sources
meet on Ensembl ids when all of them have ids, else on symbols when all of them have
symbols; a symbol that repeats within a source has its counts summed. When neither kind is
common to all (some name genes by id only, others by symbol only), they meet on Ensembl ids,
the symbols translated through scurate's shipped human or mouse table
(:mod:`scurate._data.id_table`: unambiguous pairs only), and how many genes each source
reached that way is counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate._data import id_table
from scurate._data.sources import GeneTable, Source
from scurate.errors import InputError

ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{11}(\.\d+)?$")
ENSEMBL_COLUMNS = (
    "gene_ids",
    "gene_id",
    "ensembl_id",
    "ensembl_ids",
    "ensembl",
    "feature_id",
    "gene_ensembl_id",
    "ensembl_gene_id",
)
SYMBOL_COLUMNS = (
    "gene_symbols",
    "gene_symbol",
    "feature_name",
    "gene_name",
    "gene_names",
    "symbol",
    "symbols",
    "gene",
    "name",
)
MAJORITY = 0.5  # a column holds Ensembl ids when more than this share of its values are ids


def _share_ensembl(values: NDArray[np.object_]) -> float:
    if len(values) == 0:
        return 0.0
    return float(np.mean([isinstance(v, str) and bool(ENSEMBL.match(v)) for v in values]))


def _clean(values: NDArray[np.object_], *, ensembl: bool) -> NDArray[np.object_]:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v or v.lower() == "nan":
            out[i] = None
        elif ensembl:
            out[i] = v.split(".", 1)[0] if ENSEMBL.match(v) else None
        else:
            out[i] = v
    return out


@dataclass(frozen=True)
class GeneKeys:
    """A source's genes as Ensembl ids and as symbols (None where it has none of a kind)."""

    ensembl: NDArray[np.object_] | None
    ensembl_from: str | None
    symbols: NDArray[np.object_] | None
    symbols_from: str | None


def gene_keys(genes: GeneTable) -> GeneKeys:
    """Find where a source keeps Ensembl ids and symbols.

    Ensembl ids: var_names, else the first id column. Symbols: the first symbol column (it
    keeps duplicated symbols that var_names made unique), else var_names that are not ids.
    """
    ensembl = ensembl_from = symbols = symbols_from = None
    names_are_ids = _share_ensembl(genes.names) > MAJORITY
    if names_are_ids:
        ensembl, ensembl_from = _clean(genes.names, ensembl=True), "var_names"
    lowered = {k.lower(): k for k in genes.columns}
    if ensembl is None:
        for name in ENSEMBL_COLUMNS:
            col = lowered.get(name)
            if col is not None and _share_ensembl(genes.columns[col]) > MAJORITY:
                ensembl, ensembl_from = _clean(genes.columns[col], ensembl=True), f"var['{col}']"
                break
    for name in SYMBOL_COLUMNS:
        col = lowered.get(name)
        if col is not None and _share_ensembl(genes.columns[col]) <= MAJORITY:
            symbols, symbols_from = _clean(genes.columns[col], ensembl=False), f"var['{col}']"
            break
    if symbols is None and not names_are_ids:
        symbols, symbols_from = _clean(genes.names, ensembl=False), "var_names"
    return GeneKeys(ensembl, ensembl_from, symbols, symbols_from)


@dataclass(frozen=True)
class Keyed:
    """A source's genes as keys of one kind: one per column (None where it has none), where
    they were read, and which columns got theirs through the gene table (None: no column)."""

    keys: NDArray[np.object_]
    found_in: str
    through_table: NDArray[np.bool_] | None = None


def _symbols_as_ids(symbols: NDArray[np.object_], table: id_table.IdTable) -> Keyed:
    keys = np.empty(len(symbols), dtype=object)
    through = np.zeros(len(symbols), dtype=bool)
    for i, symbol in enumerate(symbols):
        if symbol is None:
            keys[i] = None
        elif ENSEMBL.match(symbol):  # an unnamed gene called by its id, as CELLxGENE does
            keys[i] = symbol.split(".", 1)[0]
        else:
            keys[i] = table.symbol_to_id.get(symbol)
            through[i] = keys[i] is not None
    return Keyed(keys, "", through)


def as_kind(keys: GeneKeys, kind: str, target: NDArray[np.object_] | None = None) -> Keyed | None:
    """A source's genes as ``kind`` ("ensembl" or "symbol"): its own where it has that kind,
    else translated through the gene table of its organism; None where neither can be.

    Ids are translated with the table their prefix names; symbols to ids with the table of the
    ``target`` ids' organism where given (a reference's genes), else the table that has more of
    them.
    """
    own, where = (
        (keys.ensembl, keys.ensembl_from)
        if kind == "ensembl"
        else (keys.symbols, keys.symbols_from)
    )
    if own is not None:
        return Keyed(own, where or "")
    if kind == "ensembl" and keys.symbols is not None:
        if target is not None:
            organism = id_table.organism_of_ids(target)
            table = id_table.load(organism) if organism else None
        else:
            table, _ = id_table.table_for_symbols(keys.symbols)
        if table is None:
            return None
        keyed = _symbols_as_ids(keys.symbols, table)
        where = f"{keys.symbols_from}, through the {table.organism} gene table"
        return Keyed(keyed.keys, where, keyed.through_table)
    if kind == "symbol" and keys.ensembl is not None:
        organism = id_table.organism_of_ids(keys.ensembl)
        if organism is None:
            return None
        table = id_table.load(organism)
        mapped = np.array([table.id_to_symbol.get(g) if g else None for g in keys.ensembl])
        where = f"{keys.ensembl_from}, through the {organism} gene table"
        return Keyed(mapped.astype(object), where, np.array([m is not None for m in mapped]))
    return None


def meeting_keys(keys: Sequence[GeneKeys]) -> tuple[str, list[Keyed | None]]:
    """The identifier kind sources meet on, and each one's genes as that kind: Ensembl ids
    where all have them, else symbols where all have them, else Ensembl ids with the symbols
    of symbol-only sources translated (None for a source whose symbols no table has)."""
    if all(k.ensembl is not None for k in keys):
        return "ensembl", [as_kind(k, "ensembl") for k in keys]
    if all(k.symbols is not None for k in keys):
        return "symbol", [as_kind(k, "symbol") for k in keys]
    return "ensembl", [as_kind(k, "ensembl") for k in keys]


@dataclass(frozen=True)
class GeneSpace:
    """The genes every source shares, and per source a (n_vars x n_genes) 0/1 matrix that
    maps its columns onto them (so ``chunk @ projection`` reorders, subsets and sums)."""

    genes: NDArray[np.object_]
    kind: str  # "ensembl" or "symbol"
    projections: list[sp.csr_matrix]
    found_in: list[str]  # per source, where its identifiers were read
    mapped_by_table: list[int]  # per source, genes of the space it reached through the table

    def mapped(self, dataset_ids: Sequence[str]) -> dict[str, int]:
        """``{dataset_id: genes reached through the gene table}``, for the sources that did."""
        return {d: n for d, n in zip(dataset_ids, self.mapped_by_table, strict=True) if n}


def _projection(
    source: Source, keyed: Keyed, position: dict[object, int], width: int
) -> tuple[sp.csr_matrix, int]:
    """``source``'s columns onto the genes at ``position``, and how many of those genes it
    reached through the gene table."""
    rows = [i for i, g in enumerate(keyed.keys) if g in position]
    cols = [position[keyed.keys[i]] for i in rows]
    through = keyed.through_table
    mapped = (
        len({c for i, c in zip(rows, cols, strict=True) if through[i]})
        if through is not None
        else 0
    )
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(source.n_vars, width)
    )
    return matrix, mapped


def _no_meeting(
    sources: Sequence[Source], keys: Sequence[GeneKeys], keyed: Sequence[Keyed | None]
) -> str:
    """Why sources of different identifier kinds share no gene even through the table."""

    def organism_of_symbols(k: GeneKeys) -> str:
        table, _ = id_table.table_for_symbols(k.symbols if k.symbols is not None else [])
        return table.organism if table else "neither human nor mouse"

    ids_only, symbols_only, symbol_files, organisms = [], [], [], set()
    for source, k in zip(sources, keys, strict=True):
        if k.symbols is None:
            organism = id_table.organism_of_ids(k.ensembl if k.ensembl is not None else [])
            organism = organism or "neither human nor mouse"
            ids_only.append(f"{source.path.name} ({organism})")
            organisms.add(organism)
        elif k.ensembl is None:
            organism = organism_of_symbols(k)
            symbols_only.append(f"{source.path.name} ({organism})")
            symbol_files.append(source.path.name)
            organisms.add(organism)
    if len(organisms) > 1 or any(k is None for k in keyed):
        return (
            "sources share no genes, even through scurate's gene tables: "
            f"{', '.join(ids_only)} name genes by Ensembl id only and "
            f"{', '.join(symbols_only)} by symbol only"
        )
    names = ", ".join(s.path.name for s in sources)
    return (
        f"sources share no genes: no Ensembl id is common to {names}, with the symbols of "
        f"{', '.join(symbol_files)} mapped through the {organisms.pop()} gene table"
    )


def common_genes(sources: Sequence[Source]) -> GeneSpace:
    """The shared gene space of ``sources``, or one line saying why there is none."""
    keys = [gene_keys(s.read_genes()) for s in sources]
    kind, keyed = meeting_keys(keys)
    mixed = not all(k.ensembl is not None for k in keys) and not all(
        k.symbols is not None for k in keys
    )
    shared: set[object] = set()
    if all(k is not None for k in keyed):
        per_source = [set(v for v in k.keys if v is not None) for k in keyed if k is not None]
        shared = set.intersection(*per_source) if per_source else set()
    if not shared:
        if mixed:
            raise InputError(_no_meeting(sources, keys, keyed))
        names = ", ".join(s.path.name for s in sources)
        msg = f"sources share no genes: no {kind} is common to {names}"
        raise InputError(msg)
    genes = np.array(sorted(shared), dtype=object)  # type: ignore[type-var]
    position = {g: j for j, g in enumerate(genes)}
    projections, mapped = [], []
    for source, k in zip(sources, keyed, strict=True):
        assert k is not None
        matrix, n = _projection(source, k, position, len(genes))
        projections.append(matrix)
        mapped.append(n)
    found_in = [k.found_in for k in keyed if k is not None]
    return GeneSpace(genes, kind, projections, found_in, mapped)


def onto_genes(sources: Sequence[Source], genes: NDArray[np.object_], kind: str) -> GeneSpace:
    """Map each source onto a fixed gene list of identifier ``kind`` (a reference's genes),
    through the gene table where a source names genes by the other kind only.

    A source that names no genes of that kind (nor any the table translates), or none of the
    list, stops the run with one line naming it.
    """
    position = {g: j for j, g in enumerate(genes)}
    projections, found_in, mapped = [], [], []
    for source in sources:
        keyed = as_kind(gene_keys(source.read_genes()), kind, np.asarray(genes, dtype=object))
        if keyed is None:
            what = "Ensembl id" if kind == "ensembl" else "symbol"
            msg = f"{source.path}: names no genes by {what}, which the reference uses"
            raise InputError(msg)
        matrix, n = _projection(source, keyed, position, len(genes))
        if matrix.nnz == 0:
            through = (
                " (its genes translated through the gene table)"
                if keyed.through_table is not None
                else ""
            )
            msg = f"{source.path}: shares none of the reference's {len(genes)} genes{through}"
            raise InputError(msg)
        projections.append(matrix)
        found_in.append(keyed.found_in)
        mapped.append(n)
    return GeneSpace(np.asarray(genes, dtype=object), kind, projections, found_in, mapped)

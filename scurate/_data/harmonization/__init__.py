"""Metadata harmonization: every source's obs mapped to the canonical fields, by harmonizer
plugins run in order, with a record of what each field came from and what stayed unmapped.

Order: ``cellxgene`` (ids of CELLxGENE-schema sources, as they are), ``columns`` (the alias
table and the ``--metadata-map`` file), harmonizers of other plugins (by name), ``ontology``
(free text to ontology terms). Each harmonizer sees the frame the ones before it left: the
canonical columns (:data:`OUTPUT_COLUMNS`) plus the source's own obs columns; a source column
whose name is a canonical one (a lab's own ``cell_type``) is renamed ``obs.<name>``, and the
obs names are in ``obs.index``. A harmonizer fills only what is still null: a value an earlier
one set stays, except that a term id fills its field whole (the term's label replaces the free
text it was mapped from).

Only obs is read, never X.

The package's modules: ``fields`` (the canonical columns and helpers on their values),
``mapfile`` (the ``--metadata-map`` file and ``--set``), ``context`` (what a harmonizer is
given and records), ``inputs`` (a source's obs and uns), ``run`` (the harmonizers in order over
each dataset) and ``output`` (the report, the canonical obs, :func:`harmonize`).
"""

from __future__ import annotations

from scurate._data.harmonization.context import DatasetResult
from scurate._data.harmonization.fields import OUTPUT_COLUMNS
from scurate._data.harmonization.inputs import obs_frame
from scurate._data.harmonization.mapfile import MapEntry, parse_set, read_metadata_map
from scurate._data.harmonization.output import Harmonized, attach, canonical_obs, harmonize, report
from scurate._data.harmonization.run import harmonize_obs, harmonize_sources, ordered

__all__ = [
    "OUTPUT_COLUMNS",
    "DatasetResult",
    "Harmonized",
    "MapEntry",
    "attach",
    "canonical_obs",
    "harmonize",
    "harmonize_obs",
    "harmonize_sources",
    "obs_frame",
    "ordered",
    "parse_set",
    "read_metadata_map",
    "report",
]

"""What a harmonizer is given besides obs (:class:`HarmonizeContext`), what is recorded per
field (:class:`FieldRecord`), and one dataset's result (:class:`DatasetResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from scurate._data.harmonization.fields import FIELDS, id_column
from scurate._data.harmonization.mapfile import MapEntry
from scurate._data.manifest import ONTOLOGY_FIELDS


@dataclass
class FieldRecord:
    """What happened to one canonical field of one dataset."""

    sources: list[dict[str, Any]] = field(default_factory=list)  # where values came from
    mapped: dict[str, dict[str, Any]] = field(default_factory=dict)  # text -> term
    unmapped: dict[str, dict[str, Any]] = field(default_factory=dict)  # text -> candidates
    notes: list[str] = field(default_factory=list)


@dataclass
class HarmonizeContext:
    """What a harmonizer may know besides obs: where the dataset comes from, the mapping-file
    entries that apply to it, its uns scalars, and a record to write what it did into.

    A harmonizer that declares a ``context`` keyword receives it."""

    dataset_id: str
    path: Path
    entries: list[MapEntry]
    uns: dict[str, str]
    harmonizer: str = ""
    records: dict[str, FieldRecord] = field(default_factory=dict)

    def record(self, field_name: str) -> FieldRecord:
        return self.records.setdefault(field_name, FieldRecord())

    def used(self, field_name: str, kind: str, name: str, cells: int) -> None:
        """Note that ``cells`` values of the field came from a column or constant ``name``."""
        self.record(field_name).sources.append(
            {"harmonizer": self.harmonizer, "kind": kind, "name": name, "cells": cells}
        )

    def columns_for(self) -> dict[str, tuple[str, str]]:
        """Field -> (column, origin) named by the mapping file entries that apply."""
        out: dict[str, tuple[str, str]] = {}
        for entry in self.entries:
            for key, column in entry.columns.items():
                out[key] = (column, entry.origin)
        return out

    def values_for(self, field_name: str) -> dict[str, str]:
        """Text -> term id that the mapping file gives for this field."""
        out: dict[str, str] = {}
        for entry in self.entries:
            out.update(entry.values.get(field_name, {}))
        return out

    def constants_for(self) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        for entry in self.entries:
            for key, value in entry.constants.items():
                out[key] = (value, entry.origin)
        return out


@dataclass
class DatasetResult:
    dataset_id: str
    path: Path
    frame: pl.DataFrame  # OUTPUT_COLUMNS, one row per cell in source order
    records: dict[str, FieldRecord]
    carried: pl.DataFrame  # CARRIED_COLUMNS, as the source's obs has them (null where not)

    def summary(self) -> dict[str, Any]:
        n = self.frame.height
        fields: dict[str, Any] = {}
        for name in FIELDS:
            has = int(self.frame[name].is_not_null().sum())
            rec = self.records.get(name, FieldRecord())
            item: dict[str, Any] = {
                "from": rec.sources,
                "cells_with_value": has,
                "fraction_with_value": round(has / n, 4) if n else 0.0,
            }
            if name in ONTOLOGY_FIELDS:
                mapped = int(self.frame[id_column(name)].is_not_null().sum())
                item["cells_mapped"] = mapped
                item["fraction_mapped"] = round(mapped / n, 4) if n else 0.0
                item["mapped"] = [{"value": k, **v} for k, v in rec.mapped.items()]
                item["unmapped"] = [{"value": k, **v} for k, v in rec.unmapped.items()]
            if rec.notes:
                item["notes"] = rec.notes
            fields[name] = item
        return {
            "dataset_id": self.dataset_id,
            "source": str(self.path),
            "n_cells": n,
            "fields": fields,
        }

"""The ``--metadata-map`` TOML file and the ``--set`` constants: per dataset, which column is
which field, constants, and the term of a free text (format in the README)."""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scurate._data.harmonization.fields import FIELDS, ID_COLUMNS
from scurate._data.manifest import ONTOLOGY_FIELDS
from scurate.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class MapEntry:
    """One ``[[dataset]]`` of a mapping file: which datasets, which column is which field,
    and constants."""

    match: str
    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    origin: str = "--set"
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> text -> term id

    def applies_to(self, dataset_id: str, path: Path) -> bool:
        return any(fnmatch.fnmatchcase(name, self.match) for name in (dataset_id, path.name))


SETTABLE = frozenset((*FIELDS, *ID_COLUMNS))


def _check_fields(names: Sequence[str], where: str) -> None:
    for name in names:
        if name not in SETTABLE:
            msg = (
                f"{where}: unknown field '{name}' (fields: {', '.join(FIELDS)}, "
                "and their *_ontology_term_id)"
            )
            raise InputError(msg)


def _strings(table: Any, where: str) -> dict[str, str]:
    if not isinstance(table, dict):
        msg = f'{where}: expected a table of field = "value"'
        raise InputError(msg)
    out: dict[str, str] = {}
    for key, value in table.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            msg = f"{where}: '{key}' must be a string, got {type(value).__name__}"
            raise InputError(msg)
        out[str(key)] = str(value)
    _check_fields(list(out), where)
    return out


def read_metadata_map(path: str | os.PathLike[str]) -> list[MapEntry]:
    """Read a ``--metadata-map`` TOML file (format in the README) into its entries."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        msg = f"metadata_map='{path}': no such file"
        raise InputError(msg) from exc
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"metadata_map='{path}': cannot read ({exc})"
        raise InputError(msg) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"metadata_map='{path}': not valid TOML ({exc})"
        raise InputError(msg) from exc
    unknown = set(data) - {"dataset"}
    if unknown:
        msg = f"{path}: unknown table '{sorted(unknown)[0]}' (write [[dataset]] entries)"
        raise InputError(msg)
    entries = data.get("dataset", [])
    if not isinstance(entries, list):
        msg = f"{path}: 'dataset' must be an array of tables ([[dataset]])"
        raise InputError(msg)
    out = []
    for i, entry in enumerate(entries, start=1):
        where = f"{path}: [[dataset]] #{i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
            msg = f'{where}: needs match = "<dataset id or file name glob>"'
            raise InputError(msg)
        if extra := set(entry) - {"match", "columns", "set", "values"}:
            msg = f"{where}: unknown key '{sorted(extra)[0]}' (keys: match, columns, set, values)"
            raise InputError(msg)
        where = f"{path}: [[dataset]] match = '{entry['match']}'"
        columns = _strings(entry.get("columns", {}), f"{where}, columns")
        constants = _strings(entry.get("set", {}), f"{where}, set")
        if both := sorted(set(columns) & set(constants)):
            msg = f"{where}: '{both[0]}' is both a column and a constant"
            raise InputError(msg)
        values = _values(entry.get("values", {}), f"{where}, values")
        out.append(MapEntry(entry["match"], columns, constants, str(path), values))
    return out


def _values(table: Any, where: str) -> dict[str, dict[str, str]]:
    """``values.cell_type = { gamma = "CL:0002275" }``: a text's term, checked now."""
    from scurate._data import ontology

    if not isinstance(table, dict):
        msg = f'{where}: expected tables like values.cell_type = {{ gamma = "CL:0002275" }}'
        raise InputError(msg)
    out: dict[str, dict[str, str]] = {}
    for name, pairs in table.items():
        if name not in ONTOLOGY_FIELDS:
            fields = ", ".join(ONTOLOGY_FIELDS)
            msg = f"{where}: '{name}' is not a field with ontology terms ({fields})"
            raise InputError(msg)
        checked = _strings_any(pairs, f"{where}.{name}")
        for text, term_id in checked.items():
            try:
                ontology.check_term_id(name, term_id)
            except ValueError as exc:
                msg = f"{where}.{name}: '{text}' = {exc}"
                raise InputError(msg) from None
        out[name] = checked
    return out


def _strings_any(table: Any, where: str) -> dict[str, str]:
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        msg = f'{where}: expected a table of "text" = "term id"'
        raise InputError(msg)
    return {str(k): str(v) for k, v in table.items()}


def parse_set(pairs: Sequence[str]) -> MapEntry | None:
    """``--set field=value`` (repeatable): constants for every dataset."""
    constants: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            msg = f"set_fields={pair!r}: expected field=value (for example tissue=pancreas)"
            raise InputError(msg)
        constants[key.strip()] = value.strip()
    _check_fields(list(constants), "`set_fields`")
    return MapEntry("*", {}, constants) if constants else None

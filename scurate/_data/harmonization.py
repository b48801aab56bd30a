"""Metadata harmonization: every source's obs mapped to the canonical fields, by harmonizer
plugins run in order, with a record of what each field came from and what stayed unmapped.

Order: ``cellxgene`` (ids of CELLxGENE-schema sources, as they are), ``columns`` (the alias
table and the ``--metadata-map`` file), harmonizers of other plugins (by name), ``ontology``
(free text to ontology terms). Each harmonizer sees the frame the ones before it left: the
canonical columns (:data:`OUTPUT_COLUMNS`) plus the source's own obs columns; a source column
whose name is a canonical one (a lab's own ``cell_type``) is renamed ``obs.<name>``, and the
obs names are in ``obs.index``. A
harmonizer fills only what is still null: a value an earlier one set stays, except that a term
id fills its field whole (the term's label replaces the free text it was mapped from).

Only obs is read, never X.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from scurate._data.manifest import CANONICAL_FIELDS, ONTOLOGY_FIELDS
from scurate._data.sources import Source
from scurate._plugins.registry import Plugins, Registered, discover
from scurate.errors import InputError, PluginError, ScurateError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)

FIELDS = CANONICAL_FIELDS
ID_COLUMNS = tuple(f"{f}_ontology_term_id" for f in ONTOLOGY_FIELDS)
OUTPUT_COLUMNS = (*FIELDS, *ID_COLUMNS)
FIRST = ("cellxgene", "columns")  # then other plugins' harmonizers by name, then LAST
LAST = ("ontology",)
RENAMED_PREFIX = "obs."
INDEX_COLUMN = "obs.index"  # the obs names, in the frame a harmonizer sees


def id_column(field_name: str) -> str:
    return f"{field_name}_ontology_term_id"


def obs_column(name: str) -> str:
    """The name a source's obs column has in the frame a harmonizer sees."""
    return f"{RENAMED_PREFIX}{name}" if name in OUTPUT_COLUMNS else name


# --------------------------------------------------------------------------- mapping file


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
        msg = f"--metadata-map {path}: no such file"
        raise InputError(msg) from exc
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"--metadata-map {path}: cannot read ({exc})"
        raise InputError(msg) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"--metadata-map {path}: not valid TOML ({exc})"
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
            msg = f"--set '{pair}': expected field=value (for example tissue=pancreas)"
            raise InputError(msg)
        constants[key.strip()] = value.strip()
    _check_fields(list(constants), "--set")
    return MapEntry("*", {}, constants) if constants else None


# --------------------------------------------------------------------------- records


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


# --------------------------------------------------------------------------- helpers

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


# --------------------------------------------------------------------------- engine


def ordered(registry: Mapping[str, Registered]) -> list[Registered]:
    """The harmonizers in the documented order: FIRST, the others by name, LAST."""
    names = [n for n in FIRST if n in registry]
    names += sorted(n for n in registry if n not in FIRST and n not in LAST)
    names += [n for n in LAST if n in registry]
    return [registry[n] for n in names]


def _takes_context(obj: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    return "context" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _working_frame(obs: pl.DataFrame) -> pl.DataFrame:
    renamed = obs.rename({c: obs_column(c) for c in obs.columns if c in OUTPUT_COLUMNS})
    canonical = [pl.lit(None, dtype=pl.String).alias(c) for c in OUTPUT_COLUMNS]
    return renamed.with_columns(canonical).select([*OUTPUT_COLUMNS, *renamed.columns])


def _merge(before: pl.DataFrame, after: pl.DataFrame) -> pl.DataFrame:
    """Fill what was null in ``before`` from ``after``; a new term id brings its label."""
    exprs = []
    for name in FIELDS:
        old, new = pl.col(name), after[name].cast(pl.String)
        if name in ONTOLOGY_FIELDS:
            id_name = id_column(name)
            old_id, new_id = pl.col(id_name), after[id_name].cast(pl.String)
            takes = old_id.is_null() & new_id.is_not_null()
            exprs.append(pl.when(takes).then(new_id).otherwise(old_id).alias(id_name))
            exprs.append(
                pl.when(takes)
                .then(pl.coalesce(new, old))
                .otherwise(pl.coalesce(old, new))
                .alias(name)
            )
        else:
            exprs.append(pl.coalesce(old, new).alias(name))
    return before.with_columns(exprs)


def _run_one(item: Registered, frame: pl.DataFrame, ctx: HarmonizeContext) -> pl.DataFrame:
    who = f"harmonizer '{item.name}' (plugin '{item.plugin}')"
    ctx.harmonizer = item.name
    try:
        if _takes_context(item.obj):
            result = item.obj(frame, ctx.dataset_id, context=ctx)
        else:
            result = item.obj(frame, ctx.dataset_id)
    except ScurateError:
        raise
    except Exception as exc:
        msg = f"{who} failed on {ctx.path}: {type(exc).__name__}: {exc}"
        raise PluginError(msg) from exc
    if not isinstance(result, pl.DataFrame) or result.height != frame.height:
        got = type(result).__name__
        if isinstance(result, pl.DataFrame):
            got = f"{result.height} rows"
        msg = f"{who} returned {got} for {frame.height} cells; expected a polars DataFrame"
        raise PluginError(msg)
    missing = [c for c in OUTPUT_COLUMNS if c not in result.columns]
    if missing:
        result = result.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in missing)
    return result


def read_uns_scalars(path: Path) -> dict[str, str]:
    """String scalars of an h5ad's uns (``organism_ontology_term_id``...); empty otherwise."""
    if not path.name.endswith(".h5ad"):
        return {}
    import h5py

    out: dict[str, str] = {}
    try:
        with h5py.File(path, "r") as f:
            uns = f.get("uns")
            if not isinstance(uns, h5py.Group):
                return {}
            for key, item in uns.items():
                if isinstance(item, h5py.Dataset) and item.shape == ():
                    value = item[()]
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "replace")
                    if isinstance(value, str):
                        out[key] = value
    except OSError:
        return {}
    return out


def obs_frame(source: Source) -> pl.DataFrame:
    """A source's obs as polars: categoricals as strings, the obs names in ``obs.index``."""
    obs = source.read_obs()
    data: dict[str, pl.Series] = {INDEX_COLUMN: pl.Series(INDEX_COLUMN, obs.index.astype(str))}
    for name in obs.columns:
        col = obs[name]
        series = None
        if str(col.dtype) != "category":
            try:
                series = pl.Series(str(name), col.to_numpy(), nan_to_null=True)
            except (TypeError, ValueError, pl.exceptions.PolarsError):
                series = None
        # categoricals, and object columns polars cannot type (it gives Object where the
        # first values are missing), as strings
        if series is None or series.dtype == pl.Object:
            values = [None if v is None or v != v else str(v) for v in col.astype(object).tolist()]
            series = pl.Series(str(name), values, dtype=pl.String)
        data[str(name)] = series
    return pl.DataFrame(data, height=len(obs))


def harmonize_obs(
    obs: pl.DataFrame,
    dataset_id: str,
    *,
    path: str | os.PathLike[str] | None = None,
    entries: Sequence[MapEntry] = (),
    uns: Mapping[str, str] | None = None,
    plugins: Plugins | None = None,
) -> DatasetResult:
    """Run the harmonizers over one dataset's obs.

    Parameters
    ----------
    obs
        The dataset's obs, one row per cell.
    dataset_id
        Its id (mapping-file entries are matched against it and the file name).
    path
        The source file, named in errors.
    entries
        Mapping-file entries (and ``--set`` constants); those that apply are used.
    uns
        String scalars of the source's uns.
    plugins
        Discovered plugins (discovered here when not given).
    """
    plugins = plugins or discover()
    where = Path(path) if path is not None else Path(dataset_id)
    applying = [e for e in entries if e.applies_to(dataset_id, where)]
    ctx = HarmonizeContext(dataset_id, where, applying, dict(uns or {}))
    frame = _working_frame(obs)
    for item in ordered(plugins.registries["harmonizers"]):
        result = _run_one(item, frame, ctx)
        frame = _merge(frame, result)
    out = frame.select(OUTPUT_COLUMNS)
    return DatasetResult(dataset_id, where, out, ctx.records)


def harmonize_sources(
    sources: Sequence[Source],
    *,
    metadata_map: str | os.PathLike[str] | None = None,
    set_fields: Sequence[str] = (),
    plugins: Plugins | None = None,
) -> list[DatasetResult]:
    """Harmonize every source's obs (never X); one result per source, in order."""
    plugins = plugins or discover()
    entries = read_metadata_map(metadata_map) if metadata_map is not None else []
    given = parse_set(set_fields)
    if given is not None:
        entries.append(given)
    for entry in entries:
        if entry.origin != "--set" and not any(
            entry.applies_to(s.dataset_id, Path(s.path)) for s in sources
        ):
            log.warning("%s: match = '%s' names no source", entry.origin, entry.match)
    results = []
    for source in sources:
        results.append(
            harmonize_obs(
                obs_frame(source),
                source.dataset_id,
                path=source.path,
                entries=entries,
                uns=read_uns_scalars(Path(source.path)),
                plugins=plugins,
            )
        )
    return results


def report(results: Sequence[DatasetResult]) -> dict[str, Any]:
    """Per dataset and field: where values came from, how many mapped, what did not."""
    datasets = [r.summary() for r in results]
    total = sum(r.frame.height for r in results)
    rates: dict[str, Any] = {}
    for name in FIELDS:
        has = sum(int(r.frame[name].is_not_null().sum()) for r in results)
        entry: dict[str, Any] = {"cells_with_value": has}
        if name in ONTOLOGY_FIELDS:
            mapped = sum(int(r.frame[id_column(name)].is_not_null().sum()) for r in results)
            entry["cells_mapped"] = mapped
            entry["fraction_mapped"] = round(mapped / total, 4) if total else 0.0
        rates[name] = entry
    return {"n_cells": total, "fields": rates, "datasets": datasets}


# --------------------------------------------------------------------------- API


@dataclass
class Harmonized:
    """Every source's canonical obs, one row per cell, and what happened per field."""

    obs: pl.DataFrame  # cell_id, dataset_id, source, row, then OUTPUT_COLUMNS
    report: dict[str, Any]
    results: list[DatasetResult]


def attach(manifest: pl.DataFrame, results: Sequence[DatasetResult]) -> pl.DataFrame:
    """The manifest with its canonical columns taken from the harmonized obs (same cells,
    same order: the sources' rows one after the other)."""
    canonical = pl.concat([r.frame for r in results])
    if canonical.height != manifest.height:
        msg = f"harmonized {canonical.height} cells for a pool of {manifest.height}"
        raise PluginError(msg)
    return manifest.with_columns(canonical.get_columns())


def canonical_obs(sources: Sequence[Source], results: Sequence[DatasetResult]) -> pl.DataFrame:
    frames = []
    for source, result in zip(sources, results, strict=True):
        names = pl.Series(source.obs_names.astype(str), dtype=pl.String)
        ids = pl.lit(f"{source.dataset_id}/") + names
        frames.append(
            result.frame.with_columns(
                pl.select(ids).to_series().alias("cell_id"),
                pl.lit(source.dataset_id).alias("dataset_id"),
                pl.lit(str(source.path)).alias("source"),
                pl.int_range(0, result.frame.height, dtype=pl.UInt32).alias("row"),
            ).select(["cell_id", "dataset_id", "source", "row", *OUTPUT_COLUMNS])
        )
    return pl.concat(frames)


def harmonize(
    sources: Sequence[str | os.PathLike[str]],
    *,
    metadata_map: str | os.PathLike[str] | None = None,
    set_fields: Sequence[str] = (),
    out: str | os.PathLike[str] | None = None,
) -> Harmonized:
    """Map every source's obs to the canonical fields, without selecting anything.

    Parameters
    ----------
    sources
        .h5ad files, or folders searched for them.
    metadata_map
        A TOML mapping file: per dataset (id or file name, globs allowed), which column is
        which field, and constants (format in the README).
    set_fields
        ``"field=value"`` constants for every dataset (``"tissue=pancreas"``).
    out
        Write the canonical obs to this parquet file (temporary name, then renamed).

    Returns
    -------
    The canonical obs of all cells, and the report: per dataset and field, the column or
    constant used, the cells mapped to a term, the values left unmapped with candidates.
    """
    from scurate._data.sources import open_sources

    plugins = discover()
    readers = {name: item.obj for name, item in plugins.registries["sources"].items()}
    opened = open_sources(sources, readers or None)
    results = harmonize_sources(
        opened, metadata_map=metadata_map, set_fields=set_fields, plugins=plugins
    )
    obs = canonical_obs(opened, results)
    summary = report(results)
    if out is not None:
        path = Path(out)
        if path.is_dir():
            msg = f"-o {path}: is a folder; give a .parquet file name"
            raise InputError(msg)
        if not path.parent.is_dir():
            msg = f"-o {path}: cannot write (no folder {path.parent})"
            raise InputError(msg)
        tmp = path.with_name(f".{path.name}.partial")
        try:
            obs.write_parquet(tmp)
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            msg = f"-o {path}: cannot write ({exc.strerror or exc})"
            raise InputError(msg) from exc
        summary["output"] = str(path)
    return Harmonized(obs, summary, list(results))

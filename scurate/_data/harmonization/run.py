"""Running the harmonizers over a dataset: in the documented order, each on the frame the ones
before it left, keeping only what was still null (a new term id brings its label)."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from scurate import _backend as backend
from scurate._data.harmonization.context import DatasetResult, HarmonizeContext
from scurate._data.harmonization.fields import FIELDS, OUTPUT_COLUMNS, id_column, obs_column
from scurate._data.harmonization.inputs import as_polars, carried_columns, obs_and_uns
from scurate._data.harmonization.mapfile import MapEntry, parse_set, read_metadata_map
from scurate._data.manifest import ONTOLOGY_FIELDS
from scurate._data.sources import Source
from scurate._plugins.registry import Plugins, Registered, discover
from scurate.errors import PluginError, ScurateError

log = logging.getLogger(__name__)

FIRST = ("cellxgene", "columns")  # then other plugins' harmonizers by name, then LAST
LAST = ("ontology",)


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
        id_name = id_column(name) if name in ONTOLOGY_FIELDS else None
        if new.null_count() == new.len() and (
            id_name is None or after[id_name].null_count() == after.height
        ):
            continue  # nothing to fill: the column stays as it is (an all-null one costs nothing)
        if id_name is not None:
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
    return before.with_columns(exprs) if exprs else before


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
    carried = carried_columns(obs, str(where))
    return DatasetResult(dataset_id, where, out, ctx.records, carried)


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
    read = backend.current().map(obs_and_uns, sources, label=lambda s: str(s.path))
    for source, (obs, uns) in zip(sources, read, strict=True):
        results.append(
            harmonize_obs(
                as_polars(obs),
                source.dataset_id,
                path=source.path,
                entries=entries,
                uns=uns,
                plugins=plugins,
            )
        )
    return results

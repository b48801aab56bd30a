"""What harmonization gives: the report, the canonical columns put into a manifest or an obs
frame, and :func:`harmonize`, which maps the sources' obs without selecting anything."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from scurate._data.atomic import atomic
from scurate._data.harmonization.context import DatasetResult
from scurate._data.harmonization.fields import CARRIED_COLUMNS, FIELDS, OUTPUT_COLUMNS, id_column
from scurate._data.harmonization.run import harmonize_sources
from scurate._data.manifest import ONTOLOGY_FIELDS, cell_ids
from scurate._data.sources import Source
from scurate._plugins.registry import discover
from scurate.errors import InputError, PluginError


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


@dataclass
class Harmonized:
    """Every source's canonical obs, one row per cell, and what happened per field."""

    obs: pl.DataFrame  # cell_id, dataset_id, source, row, OUTPUT_COLUMNS, CARRIED_COLUMNS
    report: dict[str, Any]
    results: list[DatasetResult]


def attach(manifest: pl.DataFrame, results: Sequence[DatasetResult]) -> pl.DataFrame:
    """The manifest with its canonical columns taken from the harmonized obs, and the obs
    columns it carries (``is_primary_data``), for the same cells in the same order (the
    sources' rows one after the other)."""
    canonical = pl.concat([r.frame.hstack(r.carried) for r in results])
    if canonical.height != manifest.height:
        msg = f"harmonized {canonical.height} cells for a pool of {manifest.height}"
        raise PluginError(msg)
    return manifest.with_columns(canonical.get_columns())


def canonical_obs(sources: Sequence[Source], results: Sequence[DatasetResult]) -> pl.DataFrame:
    frames = []
    for source, result in zip(sources, results, strict=True):
        ids = pl.Series("cell_id", cell_ids(source.dataset_id, source.obs_names), pl.String)
        frames.append(
            result.frame.hstack(result.carried)
            .with_columns(
                ids,
                pl.lit(source.dataset_id).alias("dataset_id"),
                pl.lit(str(source.path)).alias("source"),
                pl.int_range(0, result.frame.height, dtype=pl.UInt32).alias("row"),
            )
            .select(["cell_id", "dataset_id", "source", "row", *OUTPUT_COLUMNS, *CARRIED_COLUMNS])
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
        .h5ad files, AnnData zarr stores, or folders searched for them.
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
            msg = f"out='{path}': is a folder; give a .parquet file name"
            raise InputError(msg)
        if not path.parent.is_dir():
            msg = f"out='{path}': cannot write (no folder {path.parent})"
            raise InputError(msg)
        try:
            with atomic(path) as tmp:
                obs.write_parquet(tmp)
        except OSError as exc:
            msg = f"out='{path}': cannot write ({exc.strerror or exc})"
            raise InputError(msg) from exc
        summary["output"] = str(path)
    return Harmonized(obs, summary, list(results))

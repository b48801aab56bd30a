"""What the harmonizers read of a source: its obs as polars and its uns scalars, never X; and
the obs columns carried to the manifest as they are (``is_primary_data``)."""

from __future__ import annotations

import pandas as pd
import polars as pl

from scurate._data.harmonization.fields import CARRIED_COLUMNS, INDEX_COLUMN, clean_text
from scurate._data.sources import Source
from scurate.errors import InputError


def uns_scalars(source: Source) -> dict[str, str]:
    """String scalars of a source's uns (``organism_ontology_term_id``...), where its reader
    gives them (``uns_scalars()``; the AnnData readers do); empty otherwise."""
    reader = getattr(source, "uns_scalars", None)
    return dict(reader()) if reader is not None else {}


def obs_and_uns(source: Source) -> tuple[pd.DataFrame, dict[str, str]]:
    """What a harmonizer reads of a source, as read (a Ray task may read it: no polars here)."""
    return source.read_obs(), uns_scalars(source)


def obs_frame(source: Source) -> pl.DataFrame:
    """A source's obs as polars: categoricals as strings, the obs names in ``obs.index``."""
    return as_polars(source.read_obs())


def as_polars(obs: pd.DataFrame) -> pl.DataFrame:
    """obs as polars: categoricals as strings, the obs names in ``obs.index``."""
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


TRUTH = {"true": True, "false": False, "1": True, "0": False}


def carried_columns(obs: pl.DataFrame, where: str) -> pl.DataFrame:
    """The obs columns a manifest carries as they are (:data:`CARRIED_COLUMNS`), typed; null
    where the source has no such column. ``is_primary_data`` is a bool column of CELLxGENE files,
    or text "True"/"False"; any other value is one line naming ``where``."""
    out = []
    for name, dtype in CARRIED_COLUMNS.items():
        if name not in obs.columns:
            out.append(pl.Series(name, [None] * obs.height, dtype=dtype))
            continue
        column = obs[name]
        if column.dtype != pl.Boolean:
            text = clean_text(column).str.to_lowercase()
            flags = text.replace_strict(TRUTH, default=None, return_dtype=pl.Boolean)
            bad = text.filter(text.is_not_null() & flags.is_null())
            if len(bad):
                first = column.filter(text.is_not_null() & flags.is_null())[0]
                msg = f"{where}: obs column '{name}' holds '{first}'; expected True or False"
                raise InputError(msg)
            column = flags
        out.append(column.cast(dtype).alias(name))
    return pl.DataFrame(out, height=obs.height)

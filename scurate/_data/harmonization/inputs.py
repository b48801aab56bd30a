"""What the harmonizers read of a source: its obs as polars and its uns scalars, never X."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from scurate._data.harmonization.fields import INDEX_COLUMN
from scurate._data.sources import Source


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

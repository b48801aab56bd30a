"""The manifest: one row per cell of the pool. The only place its columns are defined.

| column | meaning |
|---|---|
| cell_id | ``dataset_id/obs_name``, unique across the run |
| dataset_id | the source file's stem, made unique |
| source | the source's absolute path (file, zarr store or SOMA experiment folder) |
| row | the cell's row in its source |
| organism ... lab | canonical metadata, CELLxGENE schema (null where no harmonizer mapped it) |
| cell_line, lab | a cell line's name (Cellosaurus term) and the lab; scurate's additions |
| *_ontology_term_id | the ontology term of each canonical field where mapped, else null |
| is_primary_data | obs ``is_primary_data`` where the source has it (CELLxGENE: false for cells
  deposited again in another dataset), else null |
| soma_joinid | the cell's ``soma_joinid`` in a TileDB-SOMA experiment (Census), else null |
| n_counts, n_genes | total counts and genes detected (above zero) in the raw counts (null where
  the source has no counts: X normalized) |
| mito_fraction | share of the counts in mitochondrial genes (MT-/mt- symbols, ids mapped to them,
  or a var flag mt/mito; 0 where none was found; null without counts) |
| doublet_score | share of simulated doublets among the cell's nearest neighbours (see
  scurate._compute.qc; null with --qc doublets=off) |
| exact_dup_of | cell_id of the kept copy when the cell is an exact copy of another (raw counts
  equal on the genes both files measured; see scurate._compute.dedup), else null |
| near_dup_group | the smallest pool row of the cell's near-duplicate group, null outside any |
| density | neighbourhood density relative to the pool's median (1 = typical; see scoring) |
| novelty | distance to the nearest cell of the reference corpus (null without --reference) |
| nearest_reference | cell_id of that reference cell |
| selected | whether the cell is in the selection |
| selection_rank | 0-based priority order of a selected cell; null for the rest |
| weight | pool cells whose nearest selected cell this is (Voronoi size; null if not selected) |
| policy | the policy that selected the cell; null for the rest |
| reason | why the cell is or is not selected: selected, not_primary (--primary-only), qc (failed
  a QC filter), exact_copy, near_copy (set aside as duplicates), quota_full (its stratum's
  quota was filled), past_budget (a candidate the policy did not reach) |
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._data.atomic import atomic
from scurate.errors import InputError

CANONICAL_FIELDS = (
    "organism",
    "tissue",
    "cell_type",
    "assay",
    "disease",
    "sex",
    "development_stage",
    "donor_id",
    "suspension_type",
    "cell_line",  # not in the CELLxGENE schema: a cell line's name, with a Cellosaurus term
    "lab",  # not in the CELLxGENE schema: the lab or study a dataset comes from
)
# fields with an ontology term (donor_id, suspension_type and lab have none)
ONTOLOGY_FIELDS = tuple(
    f for f in CANONICAL_FIELDS if f not in ("donor_id", "suspension_type", "lab")
)

MANIFEST_SCHEMA = pl.Schema(
    {
        "cell_id": pl.String,
        "dataset_id": pl.String,
        "source": pl.String,
        "row": pl.UInt32,
        **{name: pl.String for name in CANONICAL_FIELDS},
        **{f"{name}_ontology_term_id": pl.String for name in ONTOLOGY_FIELDS},
        "is_primary_data": pl.Boolean,
        "soma_joinid": pl.Int64,
        "n_counts": pl.Float32,
        "n_genes": pl.UInt32,
        "mito_fraction": pl.Float32,
        "doublet_score": pl.Float32,
        "exact_dup_of": pl.String,
        "near_dup_group": pl.Int64,
        "density": pl.Float32,
        "novelty": pl.Float32,
        "nearest_reference": pl.String,
        "selected": pl.Boolean,
        "selection_rank": pl.UInt32,
        "weight": pl.Float32,
        "policy": pl.String,
        "reason": pl.String,
    }
)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Every manifest column in its order and type; columns no stage filled are typed nulls."""
    return frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in MANIFEST_SCHEMA.items()
        ]
    )


def scan_manifest(path: Path) -> pl.LazyFrame:
    """Lazily read a manifest, checking that it has every column."""
    try:
        lf = pl.scan_parquet(path)
        columns = lf.collect_schema()
    except (OSError, pl.exceptions.PolarsError) as exc:
        msg = f"{path}: cannot read as parquet ({type(exc).__name__}: {exc})"
        raise InputError(msg) from exc
    if missing := set(MANIFEST_SCHEMA) - set(columns):
        msg = f"{path}: not a scurate manifest (missing: {', '.join(sorted(missing))})"
        raise InputError(msg)
    return lf


def read_manifest(path: Path) -> pl.DataFrame:
    return collect_lean(scan_manifest(path))


def collect_lean(frame: pl.LazyFrame) -> pl.DataFrame:
    """Collect ``frame`` with its columns that hold no value made as typed nulls, not read:
    polars gives every row of a string column a 16-byte view even where all are null, so a
    million-cell manifest whose sources filled few fields took 500 MB read whole, 200 MB so."""
    schema = frame.collect_schema()
    filled = frame.select(pl.all().is_not_null().any()).collect().row(0, named=True)
    if not any(filled.values()):  # no rows (or no values): nothing to save
        return frame.collect()
    kept = frame.select([name for name in schema if filled[name]]).collect()
    empty = [pl.lit(None, dtype=schema[name]).alias(name) for name in schema if not filled[name]]
    return kept.with_columns(empty).select(list(schema))


def write_manifest(frame: pl.DataFrame, path: Path) -> None:
    """Write to a temporary name and rename, so a manifest that exists is complete."""
    with atomic(path) as tmp:
        write_manifest_to(frame, tmp)


def write_manifest_to(frame: pl.DataFrame, path: Path) -> None:
    """Write the manifest at ``path`` as it is (the caller renames it into place)."""
    # one chunk: the bytes depend on the content only, not on how the frame was built
    conform(frame).rechunk().write_parquet(path, statistics=False)


def cell_ids(dataset_id: str, obs_names: NDArray[Any]) -> NDArray[np.str_]:
    """The ``cell_id`` of each cell: ``dataset_id/obs_name`` (a numpy string array: no Python
    object per cell)."""
    return np.char.add(f"{dataset_id}/", as_str(obs_names))


def codes(values: Sequence[str | None] | pl.Series) -> tuple[list[str], NDArray[np.int32]]:
    """The distinct values of a string column in order of first appearance (null as ""), and
    each cell's position among them, found in polars: no Python string per cell."""
    column = values if isinstance(values, pl.Series) else pl.Series(values, dtype=pl.String)
    column = column.cast(pl.String).fill_null("")
    names = [str(v) for v in column.unique(maintain_order=True).to_list()]
    at = column.replace_strict(names, list(range(len(names))), return_dtype=pl.Int32)
    return names, at.to_numpy()


def as_str(values: NDArray[Any]) -> NDArray[np.str_]:
    """Strings as a fixed-width numpy string array, from object arrays and from numpy's
    variable-width StringDType (which cannot be cast to ``str`` without a width)."""
    values = np.asarray(values)
    if values.dtype.kind == "T":
        width = int(np.strings.str_len(values).max(initial=1))
        return values.astype(f"U{max(width, 1)}")
    return values.astype(str)


def ids_at(ids: pl.Series, rows: NDArray[np.int64], name: str) -> pl.Series:
    """``ids[rows]`` where a row is >= 0, else null, gathered in polars: a cell id column
    turned into numpy would make a Python string per cell (1 GB at ten million cells)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = pl.repeat(None, len(rows), dtype=pl.String, eager=True).alias(name)
    where = np.flatnonzero(rows >= 0)
    return out.scatter(where, ids.gather(rows[where])) if len(where) else out

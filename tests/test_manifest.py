"""The manifest schema, typed nulls, atomic writes and the reader's check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scurate._data.manifest import (
    MANIFEST_SCHEMA,
    conform,
    ids_at,
    read_manifest,
    scan_manifest,
    write_manifest,
)
from scurate.errors import InputError


def test_every_design_column_is_in_the_schema() -> None:
    design = Path(__file__).resolve().parents[2] / "shared" / "DESIGN.md"
    if not design.exists():
        pytest.skip("../shared/DESIGN.md is not beside this checkout")
    section = design.read_text().split("## Manifest", 1)[1].split("##", 1)[0]
    import re

    named = set(re.findall(r"`([a-z_*]+)`", section)) - {"*_ontology_term_id"}
    assert named - set(PENDING) <= set(MANIFEST_SCHEMA), named - set(MANIFEST_SCHEMA)
    # a pending column that lands must leave this list, and DESIGN must still name it
    assert not set(PENDING) & set(MANIFEST_SCHEMA), set(PENDING) & set(MANIFEST_SCHEMA)
    assert set(PENDING) <= named, set(PENDING) - named


# columns DESIGN.md names that an open issue adds; until then no stage can fill them
PENDING: dict[str, str] = {}


def test_conform_fills_typed_nulls_in_order() -> None:
    frame = conform(pl.DataFrame({"row": [0, 1], "cell_id": ["d/a", "d/b"], "extra": [1, 2]}))
    assert frame.schema == MANIFEST_SCHEMA
    assert frame["cell_type"].null_count() == 2 and frame["novelty"].dtype == pl.Float32


def test_ids_at_gathers_ids_and_leaves_nulls() -> None:
    ids = pl.Series("cell_id", ["d/a", "d/b", "d/c", "d/d"])
    out = ids_at(ids, np.array([-1, 0, 3, -1]), "exact_dup_of")
    assert out.name == "exact_dup_of" and out.dtype == pl.String
    assert out.to_list() == [None, "d/a", "d/d", None]
    assert ids_at(ids, np.full(4, -1), "nn_cell_id").null_count() == 4
    assert ids_at(ids[:0], np.zeros(0, np.int64), "x").len() == 0


def test_write_is_atomic_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "manifest.parquet"
    write_manifest(pl.DataFrame({"cell_id": ["d/a"], "selected": [True]}), path)
    assert read_manifest(path)["cell_id"].to_list() == ["d/a"]
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.parquet"]


def test_a_foreign_parquet_is_refused(tmp_path: Path) -> None:
    pl.DataFrame({"cell_id": ["x"]}).write_parquet(tmp_path / "other.parquet")
    with pytest.raises(InputError, match="other.parquet: not a scurate manifest \\(missing: assay"):
        scan_manifest(tmp_path / "other.parquet")
    (tmp_path / "junk.parquet").write_text("nope")
    with pytest.raises(InputError, match="junk.parquet: cannot read as parquet"):
        scan_manifest(tmp_path / "junk.parquet")


def test_read_manifest_makes_empty_columns_without_reading_them(tmp_path: Path) -> None:
    """Columns with no value come back as typed nulls, equal to a plain read, also with no
    rows at all."""
    from scurate._data.manifest import MANIFEST_SCHEMA, conform, read_manifest, write_manifest

    for n in (0, 5):
        frame = conform(
            pl.DataFrame(
                {"cell_id": [f"d/{i}" for i in range(n)], "dataset_id": ["d"] * n},
                schema={"cell_id": pl.String, "dataset_id": pl.String},
            )
        )
        path = tmp_path / f"m{n}.parquet"
        write_manifest(frame, path)
        back = read_manifest(path)
        assert back.schema == pl.Schema(MANIFEST_SCHEMA)
        assert back.equals(pl.read_parquet(path)) and back.height == n

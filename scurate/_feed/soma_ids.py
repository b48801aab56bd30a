"""The selected cells of TileDB-SOMA sources as ``soma_joinid`` lists, one per experiment, for
loaders that read the experiment themselves (TileDB-SOMA-ML's ``ExperimentDataset``, a
CELLxGENE Census query).

``export_soma_ids(selection, out)`` writes, per experiment of the selection,
``out/NNN-NAME.parquet`` with the selected cells' ``soma_joinid`` (int64) in priority order,
with ``cell_id``,
``selection_rank`` and ``weight``, and ``out/index.json`` naming each experiment's URI (the
folder), its measurement and X layer (as the selection read them), the obs filter the
selection applied, the file and its number of cells. Each experiment is opened first and
checked to hold the cells the manifest names, as :class:`~scurate.loader.CellLoader` does.
Cells of sources that are no experiment (h5ad, zarr) are counted in the index as not exported.

Reading a file back::

    ids = pd.read_parquet("out/000-lung.parquet")["soma_joinid"].to_numpy()
    with tiledbsoma.Experiment.open(uri) as exp, exp.axis_query(
        "RNA", obs_query=tiledbsoma.AxisQuery(coords=(ids,))
    ) as query:
        dataset = tiledbsoma_ml.ExperimentDataset(query, layer_name="raw", batch_size=256)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from scurate._data import atomic
from scurate._feed.loader import _manifest_path, _open, _read_options, _report, _selected
from scurate.errors import InputError, OptionError

INDEX = "index.json"


@dataclass(frozen=True)
class SomaIds:
    """What :func:`export_soma_ids` wrote: ``index`` is ``out/index.json``."""

    out: Path
    index: dict[str, Any]

    @property
    def n_cells(self) -> int:
        return sum(int(e["n_cells"]) for e in self.index["experiments"])


def _file_name(k: int, dataset_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_id).strip("._") or "experiment"
    return f"{k:03d}-{safe[:80]}.parquet"


def _ours(path: Path) -> bool:
    return path.name == INDEX or re.fullmatch(r"\d{3}-.+\.parquet", path.name) is not None


def _prepare(out: Path, *, overwrite: bool) -> None:
    """``out`` is a folder, empty or holding an earlier export (replaced with ``overwrite``)."""
    if out.exists() and not out.is_dir():
        msg = f"{out}: exists and is not a folder"
        raise OptionError(msg)
    atomic.check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = [e for e in out.iterdir() if not atomic.is_partial(e)]
    if not entries:
        return
    if not overwrite:
        msg = f"{out}: not empty; give another folder or --overwrite"
        raise OptionError(msg)
    if foreign := [e.name for e in entries if not _ours(e)]:
        msg = (
            f"{out}: holds {foreign[0]!r}, which export-soma-ids did not write; give another folder"
        )
        raise OptionError(msg)
    for entry in entries:
        atomic.remove(entry)


def export_soma_ids(
    selection: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    budget: int | None = None,
    overwrite: bool = False,
    root: str | os.PathLike[str] | None = None,
) -> SomaIds:
    """Write the ``soma_joinid`` of the selected cells of each TileDB-SOMA experiment of a
    ``select`` output into ``out`` (see the module doc). ``budget`` keeps the first cells of
    the priority order; ``root`` is the folder the sources were moved to (see
    :class:`scurate.loader.CellLoader`)."""
    manifest = _manifest_path(selection)
    frame = _selected(manifest, budget)
    if frame["soma_joinid"].null_count() == frame.height:
        msg = (
            f"{manifest}: no selected cell comes from a TileDB-SOMA experiment (none has a "
            "soma_joinid); export-soma-ids is for selections of SOMA sources, use materialize"
        )
        raise InputError(msg)
    sources = _open(frame, manifest, root)
    experiments = {n: s for n, s in sources.items() if hasattr(s, "soma_joinids")}
    if not experiments:
        msg = (
            f"{manifest}: none of the selection's sources is a TileDB-SOMA experiment "
            f"({', '.join(sorted(sources))}); use materialize"
        )
        raise InputError(msg)
    out = Path(out)
    _prepare(out, overwrite=overwrite)
    read = _read_options(_report(manifest))
    entries, skipped = [], {}
    for k, (name, source) in enumerate(experiments.items()):
        cells = frame.filter(pl.col("source") == name).select(
            pl.col("soma_joinid").cast(pl.Int64),
            "cell_id",
            pl.col("selection_rank").cast(pl.Int64),
            pl.col("weight").cast(pl.Float32),
        )
        file = _file_name(k, source.dataset_id)
        with atomic.atomic(out / file) as tmp:
            cells.write_parquet(tmp)
        entries.append(
            {
                "uri": str(source.path),
                "dataset_id": source.dataset_id,
                "measurement": getattr(source, "measurement", None),
                "layer": getattr(source, "layer", None),
                "file": file,
                "n_cells": cells.height,
            }
        )
    for name in sources.keys() - experiments.keys():
        skipped[name] = int((frame["source"] == name).sum())
    index = {
        "scurate_soma_ids": 1,
        "selection": str(manifest.resolve()),
        "obs_filter": read.obs_filter,
        "experiments": entries,
        "not_exported": skipped,  # cells of sources that are no experiment, by source
    }
    atomic.write_text(json.dumps(index, indent=1), out / INDEX)
    return SomaIds(out=out, index=index)

"""scurate export-soma-ids: the selected cells of TileDB-SOMA sources as soma_joinid lists, for
TileDB-SOMA-ML or a Census query to read the experiments themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from scurate._feed.soma_ids import export_soma_ids as write_ids
from scurate.cli._options import with_options
from scurate.cli.materialize import Budget, Overwrite, Root, Selection
from scurate.errors import OptionError

IdsDir = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        "--output",
        help="Folder for the soma_joinid files (one parquet per experiment) and index.json.",
        show_default=False,
        metavar="FOLDER",
    ),
]


@with_options("as_json")
def export_soma_ids(
    selection: Selection,
    out: IdsDir = None,
    budget: Budget = None,
    overwrite: Overwrite = False,
    root: Root = None,
    **shared: Any,
) -> None:
    """Write the soma_joinids of the selected cells, one parquet file per TileDB-SOMA
    experiment, and index.json (each experiment's URI, measurement, layer and file).

    Read one back with tiledbsoma_ml.ExperimentDataset on
    exp.axis_query("RNA", obs_query=tiledbsoma.AxisQuery(coords=(ids,))).

    Example: scurate export-soma-ids out/ -o soma-ids/
    """
    if out is None:
        msg = "-o/--out: give a folder for the soma_joinid files"
        raise OptionError(msg)
    result = write_ids(selection, out, budget=budget, overwrite=overwrite, root=root)
    index = result.index
    if shared["as_json"]:
        typer.echo(json.dumps(index))
        return
    for entry in index["experiments"]:
        typer.echo(f"{entry['n_cells']} cells of {entry['uri']} -> {out / entry['file']}")
    for name, n in index["not_exported"].items():
        typer.echo(f"{n} cells of {name} not exported (no TileDB-SOMA experiment)")
    typer.echo(f"index: {out / 'index.json'}")

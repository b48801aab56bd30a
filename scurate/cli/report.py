"""scurate report: rebuild report.html from a finished run's manifest and report.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scurate._engine.pages import write_report

Folder = Annotated[
    Path,
    typer.Argument(
        help="An output folder of `scurate select` or `scurate score`.", metavar="FOLDER"
    ),
]


def report(ctx: typer.Context, folder: Folder) -> None:
    """Rebuild FOLDER/report.html from its manifest.parquet and report.json, without rerunning.

    The 2-D map needs the run's embedding: it is read from the run's work directory
    (scurate-work beside the output folder, or --work-dir) while that entry exists.

    Example: scurate report out/
    """
    path = write_report(folder)
    typer.echo(f"wrote {path}")

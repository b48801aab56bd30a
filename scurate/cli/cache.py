"""scurate cache: the work dir's scored pools, which later runs on the same sources reuse."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scurate._engine.cache import WorkDir
from scurate.cli._errors import Command, Group, user_errors
from scurate.cli._options import WORK_DIR
from scurate.errors import OptionError

app = typer.Typer(
    help="The work dir: scored pools that later select and score runs reuse.",
    no_args_is_help=True,
    cls=Group,
)

Folder = Annotated[
    Path,
    typer.Option(
        "--work-dir",
        help="The work dir (select's default: scurate-work beside its output folder).",
        metavar="FOLDER",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def _work_dir(folder: Path) -> WorkDir:
    if folder.exists() and not folder.is_dir():
        msg = f"--work-dir {folder}: exists and is not a folder"
        raise OptionError(msg)
    return WorkDir(folder)


def list_entries(
    ctx: typer.Context, work_dir: Folder = Path(WORK_DIR), as_json: AsJson = False
) -> None:
    """List the stored pools: size, when written, cells and sources.

    Example: scurate cache list --work-dir scurate-work
    """
    rows = _work_dir(work_dir).describe()
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title=f"{work_dir}: {len(rows)} pools, {_mb(sum(r['bytes'] for r in rows))}")
    for column in ("entry", "size", "written", "cells", "sources"):
        table.add_column(column)
    for r in rows:
        written = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["modified"]))
        cells = "-" if r["n_cells"] is None else f"{r['n_cells']:,}"
        table.add_row(r["entry"], _mb(r["bytes"]), written, cells, "\n".join(r["sources"]))
    Console().print(table)


def size(ctx: typer.Context, work_dir: Folder = Path(WORK_DIR)) -> None:
    """Print the bytes the stored pools take.

    Example: scurate cache size
    """
    rows = _work_dir(work_dir).describe()
    typer.echo(f"{_mb(sum(r['bytes'] for r in rows))} in {len(rows)} pools in {work_dir}")


def clear(ctx: typer.Context, work_dir: Folder = Path(WORK_DIR)) -> None:
    """Remove the stored pools (and half-written ones); nothing else in the folder.

    Example: scurate cache clear --work-dir scurate-work
    """
    removed, freed = _work_dir(work_dir).clear()
    typer.echo(f"removed {removed} pools ({_mb(freed)}) from {work_dir}")


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


app.command("list", cls=Command)(user_errors(list_entries))
app.command(cls=Command)(user_errors(size))
app.command(cls=Command)(user_errors(clear))

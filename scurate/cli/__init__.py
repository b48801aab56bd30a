"""The scurate command line: one module per command."""

from __future__ import annotations

from typing import Annotated

import typer

from scurate.cli._errors import Command, Group, user_errors
from scurate.cli.bench import bench
from scurate.cli.harmonize import harmonize
from scurate.cli.index import app as index_app
from scurate.cli.materialize import materialize
from scurate.cli.plugins import plugins
from scurate.cli.score import score
from scurate.cli.select import select

app = typer.Typer(
    name="scurate",
    help="Build single-cell training sets for coverage, not volume.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)


def _version(value: bool) -> None:
    if value:
        from scurate import __version__

        typer.echo(f"scurate {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Build single-cell training sets for coverage, not volume."""


for command in (select, score, plugins, harmonize, bench, materialize):
    app.command(cls=Command)(user_errors(command))
app.add_typer(index_app, name="index")


def main() -> None:
    app()

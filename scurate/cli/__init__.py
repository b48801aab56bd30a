"""The scurate command line: one module per command."""

from __future__ import annotations

from typing import Annotated

import typer

from scurate.cli import (
    bench,
    cache,
    export_soma_ids,
    harmonize,
    index,
    materialize,
    plugins,
    report,
    score,
    select,
)
from scurate.cli._errors import Command, Group, user_errors

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


# one module per command, each holding a function of its name (the module keeps the name here)
for module in (select, score, report, plugins, harmonize, bench, materialize, export_soma_ids):
    app.command(cls=Command)(user_errors(getattr(module, module.__name__.rsplit(".", 1)[1])))
app.add_typer(index.app, name="index")
app.add_typer(cache.app, name="cache")


def main() -> None:
    app()

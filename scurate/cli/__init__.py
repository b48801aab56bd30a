"""The scurate command line: one module per command."""

from __future__ import annotations

import typer

from scurate.cli._errors import user_errors
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
)
app.command()(user_errors(select))
app.command()(user_errors(score))
app.add_typer(index_app, name="index")
app.command()(user_errors(plugins))
app.command()(user_errors(harmonize))
app.command()(user_errors(bench))
app.command()(user_errors(materialize))


def main() -> None:
    app()

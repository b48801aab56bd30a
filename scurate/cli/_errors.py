"""A user's mistake is one line and exit 1; any other exception is our bug and keeps its
traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from scurate.errors import ScurateError

P = ParamSpec("P")
R = TypeVar("R")


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)  # typer still sees the command's own signature
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ScurateError as err:
            typer.echo(f"scurate: error: {err}", err=True)
            raise typer.Exit(1) from None

    return run

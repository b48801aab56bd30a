"""A user's mistake is one line and exit 1, naming the command's own flags; any other exception
is our bug and keeps its traceback. And the help says no ``<bool>`` for a flag."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from scurate.errors import ScurateError

P = ParamSpec("P")
R = TypeVar("R")


WORD = r"[\w.:,/@+=-]+"  # a value a shell needs no quotes for


def in_flags(message: str, params: Iterable[Any]) -> str:
    """The library's message in the CLI's words: a parameter it names as ``name=value`` (or
    ``name['key']=value``) becomes ``--flag value`` (``--flag key=value``), without the quotes
    a plain word needs no longer; a flag it names as ``name=True`` becomes ``--flag``, and a
    parameter it names alone, as ```name```, becomes ``--flag``."""
    for param in params:
        flags = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
        if not flags or not param.name:
            continue  # an argument (SOURCES) has no flag
        flag, name = flags[0], re.escape(param.name)
        before = r"(?<![\w.\-\[])"
        message = re.sub(rf"{before}{name}=True\b", flag, message)
        message = re.sub(rf"`{name}`", flag, message)
        message = re.sub(rf"{before}{name}\['([^']*)'\]='({WORD})'", rf"{flag} \1=\2", message)
        message = re.sub(rf"{before}{name}\['([^']*)'\]=", rf"{flag} \1=", message)
        message = re.sub(rf"{before}{name}='({WORD})'", rf"{flag} \1", message)
        message = re.sub(rf"{before}{name}=", f"{flag} ", message)
    return message


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Run ``command``; a :class:`ScurateError` is printed as one line in the command's flags
    (the command takes ``ctx: typer.Context``) and exits 1."""

    @functools.wraps(command)  # typer still sees the command's own signature
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ScurateError as err:
            command_ = getattr(kwargs.get("ctx"), "command", None)  # the click context's
            params = getattr(command_, "params", ())
            typer.echo(f"scurate: error: {in_flags(str(err), params)}", err=True)
            raise typer.Exit(1) from None

    return run


def _flags_show_no_type(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # a flag takes no value: no placeholder at all, not <bool>
        elif isinstance(param, TyperArgument) and param.metavar is not None:
            param.display_type_rich = _no_type  # type: ignore[method-assign]  # not <list[Path]>
    return params


def _no_type(ctx: Any) -> None:
    return None


class Command(TyperCommand):
    """scurate's command class: flags (``--json``, ``--help``) show no value placeholder."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_show_no_type(super().get_params(ctx))


class Group(TyperGroup):
    """The same for the top-level group and ``scurate index``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_show_no_type(super().get_params(ctx))

"""scurate plugins: what is installed, what each plugin provides, and what failed."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from scurate._plugins.registry import discover
from scurate.cli._options import with_options


@with_options("as_json")
def plugins(**shared: Any) -> None:
    """List installed plugins: name, version, hooks, what they provide, ok or the error.

    Example: scurate plugins --json
    """
    found = discover()
    rows = [
        {
            "name": info.name,
            "version": info.version,
            "hooks": info.hooks,
            "provides": info.provides,
            "ok": info.ok,
            "error": info.error,
        }
        for info in found.info
    ]
    if shared["as_json"]:
        typer.echo(json.dumps(rows))
        return
    table = Table()
    for column in ("plugin", "version", "provides", "status"):
        table.add_column(column)
    for info in found.info:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.provides.items())
        status = "ok" if info.ok else f"failed: {info.error}"
        table.add_row(info.name, info.version or "-", provides or "-", status)
    Console().print(table)

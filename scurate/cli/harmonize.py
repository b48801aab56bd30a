"""scurate harmonize: how each dataset's obs maps to the canonical fields, before selecting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from scurate._data.harmonization import harmonize as run_harmonize
from scurate.cli._options import (
    METADATA,
    Sources,
    keywords_of,
    sources_or_example,
    with_options,
)

ObsOut = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="Write the canonical obs to this parquet file.", metavar="FILE"
    ),
]


def _from(item: dict[str, Any]) -> str:
    parts = [f"{s['name']} ({s['cells']})" for s in item["from"]]
    return ", ".join(parts) or "-"


def _unmapped(item: dict[str, Any], limit: int = 8) -> str:
    lines = []
    for u in item.get("unmapped", [])[:limit]:
        cands = "; ".join(f"{c['term_id']} {c['label']}" for c in u["candidates"][:3])
        lines.append(f"{u['value']} ({u['cells']})" + (f" → {cands}" if cands else ""))
    more = len(item.get("unmapped", [])) - limit
    if more > 0:
        lines.append(f"... {more} more (--json lists all)")
    return "\n".join(lines)


def dataset_table(dataset: dict[str, Any]) -> Table:
    table = Table(title=f"{dataset['dataset_id']} ({dataset['n_cells']} cells)")
    for column in ("field", "from", "with value", "mapped", "unmapped values → candidates"):
        table.add_column(column, justify="right" if column in ("with value", "mapped") else "left")
    for name, item in dataset["fields"].items():
        if not item["cells_with_value"]:
            continue
        mapped = f"{item['cells_mapped']}" if "cells_mapped" in item else "-"
        notes = "\n".join(item.get("notes", []))
        unmapped = "\n".join(x for x in (_unmapped(item), notes) if x)
        table.add_row(name, _from(item), str(item["cells_with_value"]), mapped, unmapped)
    return table


@with_options(*METADATA, "example", "as_json")
def harmonize(
    ctx: typer.Context,
    sources: Sources = None,
    out: ObsOut = None,
    **shared: Any,
) -> None:
    """Show how each dataset's obs maps to the canonical fields and ontology terms.

    Example: scurate harmonize data/*.h5ad --metadata-map map.toml -o obs.parquet
    """
    paths = sources_or_example(sources, example=shared["example"])
    given = keywords_of(run_harmonize, {**ctx.params, "set_fields": shared["set_fields"] or []})
    result = run_harmonize(paths, **given)
    if shared["as_json"]:
        typer.echo(json.dumps(result.report, default=str))
        return
    console = Console()
    for dataset in result.report["datasets"]:
        console.print(dataset_table(dataset))
    if out is not None:
        console.print(f"wrote {out}")

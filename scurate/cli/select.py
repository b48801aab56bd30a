"""scurate select: the main job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from scurate._compute.scoring import overlap_line
from scurate._engine.jobs import select_with, write_selection
from scurate._engine.options import DEFAULT_POLICY, SelectOptions
from scurate.cli._options import (
    BACKEND,
    METADATA,
    POOL,
    WORK,
    WRITES,
    Params,
    Quota,
    Sources,
    Strata,
    run_job,
    with_options,
)

Budget = Annotated[
    int, typer.Option("--budget", "-b", help="Cells to select.", show_default=False, metavar="N")
]
OutDir = Annotated[
    Path,
    typer.Option(
        "--out", "-o", help="Folder for manifest.parquet and report.json.", metavar="FOLDER"
    ),
]
Policy = Annotated[
    str, typer.Option("--policy", help="Selection policy (see `scurate plugins`).", metavar="NAME")
]


def summary_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"{report['n_selected']} of {report['n_pool']} cells selected")
    for column in ("dataset", "pool", "qc", "duplicates", "selected", "%"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    contained = {r["dataset"]: r for r in report.get("overlap", []) if r["contained"]}
    for row in report["datasets"]:
        name = row["dataset_id"]
        if name in contained:
            name += f" (in {contained[name]['in_dataset']})"
        table.add_row(
            name,
            str(row["pool"]),
            str(row.get("qc_set_aside", 0)),
            str(row.get("duplicates_set_aside", 0)),
            str(row["selected"]),
            f"{100 * row['fraction']:.1f}",
        )
    return table


def print_summary(report: dict[str, Any], table: Table, *, as_json: bool) -> Console | None:
    """With ``--json`` the report on stdout, else the table and the largest overlaps between
    datasets; returns the console to print more on (None with ``--json``)."""
    if as_json:
        typer.echo(json.dumps(report, default=str))
        return None
    console = Console()
    console.print(table)
    for line in overlap_lines(report):
        console.print(line)
    return console


def reasons_line(report: dict[str, Any]) -> str:
    """``cells by reason: selected 300, qc 41 (min_genes 30, doublets 11), ...``."""
    parts = []
    for reason, count in sorted(report.get("reasons", {}).items(), key=lambda kv: -kv[1]):
        part = f"{reason} {count}"
        if reason == "qc":
            filters = report["qc"]["failed_per_filter"]
            part += " (" + ", ".join(f"{k} {v}" for k, v in filters.items() if v) + ")"
        parts.append(part)
    return "cells by reason: " + ", ".join(parts)


def overlap_lines(report: dict[str, Any], most: int = 5) -> list[str]:
    """The largest overlaps between datasets, one line each (at least 1 % of a dataset)."""
    shown = [r for r in report.get("overlap", []) if r["fraction"] >= 0.01]
    lines = [overlap_line(r) for r in shown[:most]]
    if len(shown) > most:
        lines.append(f"... and {len(shown) - most} more pairs in report.json (overlap)")
    return lines


@with_options(
    "seed",
    "reference",
    "keep_duplicates",
    "primary_only",
    *POOL,
    *METADATA,
    *WORK,
    *BACKEND,
    *WRITES,
    "example",
    "as_json",
)
def select(
    ctx: typer.Context,
    sources: Sources = None,
    budget: Budget = ...,  # type: ignore[assignment]
    out: OutDir = ...,  # type: ignore[assignment]
    policy: Policy = DEFAULT_POLICY,
    params: Params = None,
    strata: Strata = None,
    quota: Quota = "proportional",
    **shared: Any,
) -> None:
    """Select a budgeted, diversity-maximizing set of cells, in priority order.

    Example: scurate select data/*.h5ad --budget 50000 -o out/

    Quotas: scurate select data/ -b 5000 -o out/ --strata dataset_id --quota equal
    """
    report = run_job(ctx, SelectOptions, select_with, write_selection).report
    console = print_summary(report, summary_table(report), as_json=shared["as_json"])
    if console is None:
        return
    console.print(reasons_line(report))
    radius = report["covering_radius"]
    console.print(
        f"covering radius at the budget: {radius:.4g}  ({report['parameters']['policy']})"
    )
    outputs = report["outputs"]
    console.print(f"wrote {outputs['manifest']}, {outputs['report']} and {outputs['html']}")

"""scurate score: duplicates, density and novelty of every cell, without selecting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scurate._engine.jobs import score_with, write_scores
from scurate._engine.options import ScoreOptions
from scurate.cli._options import (
    BACKEND,
    METADATA,
    POOL,
    WORK,
    WRITES,
    Sources,
    run_job,
    with_options,
)
from scurate.cli.select import print_summary

OutDir = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="Folder for manifest.parquet, neighbours.parquet and report.json.",
        metavar="FOLDER",
    ),
]


def score_table(report: dict[str, Any]) -> Table:
    per = report["duplicates"]["set_aside_per_dataset"]
    table = Table(title=f"{report['n_pool']} cells scored")
    for column in ("dataset", "cells", "duplicates", "%"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for row in report["datasets"]:
        dups = int(per.get(row["dataset_id"], 0))
        table.add_row(
            row["dataset_id"], str(row["pool"]), str(dups), f"{100 * dups / row['pool']:.1f}"
        )
    return table


@with_options("seed", "reference", *POOL, *METADATA, *WORK, *BACKEND, *WRITES, "example", "as_json")
def score(
    ctx: typer.Context,
    sources: Sources = None,
    out: OutDir = ...,  # type: ignore[assignment]
    **shared: Any,
) -> None:
    """Score every cell: exact copies, near duplicates, density, novelty; select nothing.

    Writes the nearest-neighbour distance of every cell (neighbours.parquet) so a
    near-duplicate threshold can be chosen for `select --near-dup-eps`.

    Example: scurate score data/*.h5ad -o scores/
    """
    report = run_job(ctx, ScoreOptions, score_with, write_scores).report
    console = print_summary(report, score_table(report), as_json=shared["as_json"])
    if console is None:
        return
    near = report["scores"]["near"]
    q = near["nn_distance_quantiles"]
    console.print(
        f"nearest-neighbour distance: 1% {q['0.01']:.4g}, 5% {q['0.05']:.4g}, "
        f"median {q['0.5']:.4g}; near-duplicate eps {near['eps']:.4g} ({near['eps_rule']})"
    )
    console.print(f"wrote {', '.join(report['outputs'].values())}")

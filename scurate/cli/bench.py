"""scurate bench: does the curated set generalize better than random cells to held-out cells?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from scurate._bench.options import DEFAULT_BUDGETS, DEFAULT_POLICIES, BenchOptions
from scurate._bench.run import bench_with, write_bench
from scurate.cli._options import METADATA, POOL, WRITES, Params, Sources, run_job, with_options

Holdout = Annotated[
    str,
    typer.Option(
        "--holdout",
        help="COL=VALUE: cells with this value are the test set, the rest the pool "
        "(a manifest column such as donor_id, assay, dataset_id, or an obs column).",
        show_default=False,
        metavar="COL=VALUE",
    ),
]
Label = Annotated[
    str,
    typer.Option(
        "--label",
        help="The column the classifiers learn (cell_type, cell_line, or an obs column).",
        show_default=False,
        metavar="COL",
    ),
]
Budgets = Annotated[
    str,
    typer.Option(
        "--budgets",
        help="Fractions of the pool (0.05) or cell counts (500), commas.",
        metavar="LIST",
    ),
]
Policies = Annotated[
    str,
    typer.Option(
        "--policies", help="Policies to compare, commas; random is always run.", metavar="LIST"
    ),
]
Seeds = Annotated[
    int, typer.Option("--seeds", help="Seeds 0..N-1 per policy and budget.", metavar="N")
]
Representations = Annotated[
    str,
    typer.Option(
        "--representations",
        help="pca, or pca,autoencoder: also a small torch autoencoder of the selected cells.",
        metavar="LIST",
    ),
]
OutDir = Annotated[
    Path,
    typer.Option("--out", "-o", help="Folder for bench.json and bench.html.", metavar="FOLDER"),
]

SHOWN = ("macro_f1", "rare_recall", "knn_transfer_f1", "test_to_selected_mean")


def _cell(row: dict[str, Any], metric: str) -> str:
    value = row[metric]
    if value is None:
        return "–"
    text = f"{value['mean']:.3f}"
    if value["ci_low"] is not None:
        text += f" ±{(value['ci_high'] - value['ci_low']) / 2:.3f}"
    diff = row.get("vs_random", {}).get(metric)
    if diff:
        mark = {"won": "[green]won[/]", "lost": "[red]lost[/]", "tied": "tied"}.get(
            diff["verdict"] or "", ""
        )
        text += f"\n{diff['mean']:+.3f} {mark}"
    return text


def bench_table(payload: dict[str, Any]) -> Table:
    split = payload["split"]
    holdout = split["holdout"]
    table = Table(
        title=(
            f"held out {holdout['column']}={holdout['value']}: {split['n_test']} test cells "
            f"({split['n_test_scored']} scored), pool {split['n_pool']}; "
            f"mean ±95 % over {payload['parameters']['seeds']} seeds, then vs random"
        )
    )
    for column in ("policy", "budget", "cells", *SHOWN):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in payload["summary"]:
        table.add_row(
            row["policy"],
            str(row["budget"]),
            str(row["n_selected"]),
            *(_cell(row, m) for m in SHOWN),
        )
    full = payload["full_pool"]
    table.add_row(
        "whole pool",
        "1",
        str(full["n_selected"]),
        *("–" if full[m] is None else f"{full[m]:.3f}" for m in SHOWN),
    )
    return table


@with_options("keep_duplicates", *POOL, *METADATA, *WRITES, "example", "as_json")
def bench(
    ctx: typer.Context,
    sources: Sources = None,
    holdout: Holdout = ...,  # type: ignore[assignment]
    label: Label = ...,  # type: ignore[assignment]
    out: OutDir = ...,  # type: ignore[assignment]
    budgets: Budgets = DEFAULT_BUDGETS,
    policies: Policies = DEFAULT_POLICIES,
    seeds: Seeds = 5,
    params: Params = None,
    representations: Representations = "pca",
    **shared: Any,
) -> None:
    """Hold out a lab, protocol or donor; select from the rest with each policy, budget and
    seed; and measure what each selection teaches about the held-out cells, against random.

    Example: scurate bench data/ --holdout assay=Drop-seq --label cell_type -o bench/
    """
    result = run_job(ctx, BenchOptions, bench_with, write_bench)
    payload = result.to_dict()
    if shared["as_json"]:
        typer.echo(json.dumps(payload, default=str))
        return
    console = Console()
    console.print(bench_table(payload))
    unscored = payload["split"]["test_labels_not_scored"]
    if unscored:
        shown = ", ".join(f"{k} ({v})" for k, v in unscored.items())
        console.print(f"test labels no pool cell has, not scored: {shown}")
    console.print(f"wrote {payload['outputs']['json']} and {payload['outputs']['html']}")

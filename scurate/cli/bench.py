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
from scurate.cli._options import (
    METADATA,
    POOL,
    WRITES,
    Params,
    Quota,
    Sources,
    Strata,
    run_job,
    with_options,
)

Holdout = Annotated[
    str,
    typer.Option(
        "--holdout",
        help="COL=VALUE: cells with this value are the test set, the rest the pool "
        "(a manifest column such as donor_id, assay, dataset_id, or an obs column); "
        "COL=* holds out every value in turn and counts wins/ties/losses across them.",
        show_default=False,
        metavar="COL=VALUE",
    ),
]
Label = Annotated[
    str | None,
    typer.Option(
        "--label",
        help="The column the classifiers learn (cell_type, cell_line, or an obs column); "
        "without it, only the label-free metrics (distances, kNN coverage).",
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

SHOWN = ("macro_f1", "rare_recall", "knn_transfer_f1", "test_to_selected_mean", "knn_coverage")


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


def _shown(payload: dict[str, Any]) -> list[str]:
    """The metrics of :data:`SHOWN` this run measured (no label: the label-free ones)."""
    return [m for m in SHOWN if m in payload["metrics"]]


def bench_table(payload: dict[str, Any], seeds: int, metrics: list[str]) -> Table:
    """One holdout's summary: mean ±95 % per policy and budget, then the difference from
    random and its verdict."""
    split = payload["split"]
    holdout = split["holdout"]
    table = Table(
        title=(
            f"held out {holdout['column']}={holdout['value']}: {split['n_test']} test cells "
            f"({split['n_test_scored']} scored), pool {split['n_pool']}; "
            f"mean ±95 % over {seeds} seeds, then vs random"
        )
    )
    for column in ("policy", "budget", "cells", *metrics):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in payload["summary"]:
        table.add_row(
            row["policy"],
            str(row["budget"]),
            str(row["n_selected"]),
            *(_cell(row, m) for m in metrics),
        )
    full = payload["full_pool"]
    table.add_row(
        "whole pool",
        "1",
        str(full["n_selected"]),
        *("–" if full[m] is None else f"{full[m]:.3f}" for m in metrics),
    )
    return table


def tally_table(payload: dict[str, Any], metrics: list[str]) -> Table:
    """Won/tied/lost against random across the holdouts, per policy and budget, then all."""
    across = payload["across_holdouts"]
    n = len(payload["holdouts"])
    table = Table(
        title=f"against random over {n} holdouts of {payload['parameters']['holdout']}: "
        "won/tied/lost (mean difference)"
    )
    for column in ("policy", "budget", *metrics):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in [*across["by_budget"], *across["overall"]]:
        cells = []
        for metric in metrics:
            c = row[metric]
            text = f"[green]{c['won']}[/]/{c['tied']}/[red]{c['lost']}[/]"
            if c["no_verdict"]:
                text += f" ({c['no_verdict']}?)"
            if c["mean_diff"] is not None:
                text += f"\n{c['mean_diff']:+.3f}"
            cells.append(text)
        table.add_row(row["policy"], str(row.get("budget", "all")), *cells)
    return table


@with_options("keep_duplicates", *POOL, *METADATA, *WRITES, "example", "as_json")
def bench(
    ctx: typer.Context,
    sources: Sources = None,
    holdout: Holdout = ...,  # type: ignore[assignment]
    label: Label = None,
    out: OutDir = ...,  # type: ignore[assignment]
    budgets: Budgets = DEFAULT_BUDGETS,
    policies: Policies = DEFAULT_POLICIES,
    seeds: Seeds = 5,
    params: Params = None,
    representations: Representations = "pca",
    strata: Strata = None,
    quota: Quota = "proportional",
    **shared: Any,
) -> None:
    """Hold out a lab, protocol or donor; select from the rest with each policy, budget and
    seed; and measure what each selection teaches about the held-out cells, against random.

    Example: scurate bench data/ --holdout assay=Drop-seq --label cell_type -o bench/

    Every donor in turn: scurate bench data/ --holdout donor_id=* --label cell_type -o bench/
    """
    result = run_job(ctx, BenchOptions, bench_with, write_bench)
    payload = result.to_dict()
    if shared["as_json"]:
        typer.echo(json.dumps(payload, default=str))
        return
    console = Console()
    metrics = _shown(payload)
    seeds = payload["parameters"]["seeds"]
    parts = payload.get("holdouts", [payload])
    for part in parts:
        console.print(bench_table(part, seeds, metrics))
        unscored = part["split"]["test_labels_not_scored"]
        if unscored:
            shown = ", ".join(f"{k} ({v})" for k, v in unscored.items())
            console.print(f"test labels no pool cell has, not scored: {shown}")
    if "holdouts" in payload:
        column = payload["parameters"]["holdout"].partition("=")[0]
        for skip in payload["skipped_holdouts"]:
            console.print(f"skipped holdout {column}={skip['value']}: {skip['reason']}")
        console.print(tally_table(payload, metrics))
    console.print(f"wrote {payload['outputs']['json']} and {payload['outputs']['html']}")

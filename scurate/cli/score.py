"""scurate score: duplicates, density and novelty of every cell, without selecting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from scurate._compute.dedup import MIN_GENES
from scurate._engine import jobs as api
from scurate.cli._options import (
    AsJson,
    DupMinGenes,
    Embedder,
    IndexFactory,
    NearDupEps,
    ObsmKey,
    Reference,
    Seed,
    Sources,
    progress_on_stderr,
)
from scurate.cli.harmonize import MetadataMap, SetFields
from scurate.cli.select import overlap_lines
from scurate.errors import OptionError

OutDir = Annotated[
    Path,
    typer.Option(
        "--out", "-o", help="Folder for manifest.parquet, neighbours.parquet and report.json."
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


def score(
    sources: Sources = None,
    out: OutDir = ...,  # type: ignore[assignment]
    obsm_key: ObsmKey = None,
    embedder: Embedder = "pca",
    seed: Seed = 0,
    reference: Reference = None,
    near_dup_eps: NearDupEps = None,
    index_factory: IndexFactory = None,
    dup_min_genes: DupMinGenes = MIN_GENES,
    metadata_map: MetadataMap = None,
    set_fields: SetFields = None,
    as_json: AsJson = False,
) -> None:
    """Score every cell: exact copies, near duplicates, density, novelty; select nothing.

    Writes the nearest-neighbour distance of every cell (neighbours.parquet) so a
    near-duplicate threshold can be chosen for `select --near-dup-eps`.

    Example: scurate score data/*.h5ad -o scores/
    """
    paths = list(sources or [])
    if not paths:
        msg = "no sources: give .h5ad files or folders"
        raise OptionError(msg)
    with progress_on_stderr(enabled=not as_json) as progress:
        result = api.score_to_dir(
            paths,
            out=out,
            obsm_key=obsm_key,
            embedder=embedder,
            seed=seed,
            reference=reference,
            near_dup_eps=near_dup_eps,
            index_factory=index_factory,
            dup_min_genes=dup_min_genes,
            metadata_map=metadata_map,
            set_fields=set_fields or [],
            progress=progress,
        )
    report = result.report
    if as_json:
        typer.echo(json.dumps(report, default=str))
        return
    console = Console()
    console.print(score_table(report))
    for line in overlap_lines(report):
        console.print(line)
    near = report["scores"]["near"]
    q = near["nn_distance_quantiles"]
    console.print(
        f"nearest-neighbour distance: 1% {q['0.01']:.4g}, 5% {q['0.05']:.4g}, "
        f"median {q['0.5']:.4g}; near-duplicate eps {near['eps']:.4g} ({near['eps_rule']})"
    )
    console.print(f"wrote {', '.join(report['outputs'].values())}")

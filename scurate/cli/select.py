"""scurate select: the main job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from scurate._compute.dedup import MIN_GENES
from scurate._compute.scoring import overlap_line
from scurate._data.example import example_sources
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
from scurate.errors import OptionError

Budget = Annotated[int, typer.Option("--budget", "-b", help="Cells to select.", show_default=False)]
OutDir = Annotated[
    Path, typer.Option("--out", "-o", help="Folder for manifest.parquet and report.json.")
]
Policy = Annotated[str, typer.Option("--policy", help="Selection policy (see `scurate plugins`).")]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", help="Policy parameter key=value (repeatable).", show_default=False),
]
KeepDuplicates = Annotated[
    bool,
    typer.Option(
        "--keep-duplicates",
        help="Let the policy choose exact copies and every near duplicate (by default it sees "
        "one kept copy and one cell per near-duplicate group).",
    ),
]
Strata = Annotated[
    str | None,
    typer.Option(
        "--strata",
        help="Manifest columns COL[,COL...] whose values divide the budget (quotas).",
        show_default=False,
    ),
]
Quota = Annotated[
    str,
    typer.Option("--quota", help="With --strata: proportional, equal or min:N cells per stratum."),
]
Example = Annotated[
    bool, typer.Option("--example", help="Select from the small example corpus shipped inside.")
]


def summary_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"{report['n_selected']} of {report['n_pool']} cells selected")
    for column in ("dataset", "pool", "duplicates", "selected", "%"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    contained = {r["dataset"]: r for r in report.get("overlap", []) if r["contained"]}
    for row in report["datasets"]:
        name = row["dataset_id"]
        if name in contained:
            name += f" (in {contained[name]['in_dataset']})"
        table.add_row(
            name,
            str(row["pool"]),
            str(row.get("duplicates_set_aside", 0)),
            str(row["selected"]),
            f"{100 * row['fraction']:.1f}",
        )
    return table


def overlap_lines(report: dict[str, Any], most: int = 5) -> list[str]:
    """The largest overlaps between datasets, one line each (at least 1 % of a dataset)."""
    shown = [r for r in report.get("overlap", []) if r["fraction"] >= 0.01]
    lines = [overlap_line(r) for r in shown[:most]]
    if len(shown) > most:
        lines.append(f"... and {len(shown) - most} more pairs in report.json (overlap)")
    return lines


def select(
    sources: Sources = None,
    budget: Budget = ...,  # type: ignore[assignment]
    out: OutDir = ...,  # type: ignore[assignment]
    policy: Policy = "kcenter",
    obsm_key: ObsmKey = None,
    embedder: Embedder = "pca",
    seed: Seed = 0,
    param: Params = None,
    reference: Reference = None,
    keep_duplicates: KeepDuplicates = False,
    near_dup_eps: NearDupEps = None,
    index_factory: IndexFactory = None,
    dup_min_genes: DupMinGenes = MIN_GENES,
    metadata_map: MetadataMap = None,
    set_fields: SetFields = None,
    strata: Strata = None,
    quota: Quota = "proportional",
    example: Example = False,
    as_json: AsJson = False,
) -> None:
    """Select a budgeted, diversity-maximizing set of cells, in priority order.

    Example: scurate select data/*.h5ad --budget 50000 -o out/

    Quotas: scurate select data/ -b 5000 -o out/ --strata dataset_id --quota equal
    """
    paths = list(sources or [])
    if example:
        paths.extend(example_sources())
    if not paths:
        msg = "no sources: give .h5ad files or folders, or --example"
        raise OptionError(msg)
    with progress_on_stderr(enabled=not as_json) as progress:
        result = api.select_to_dir(
            paths,
            budget,
            out=out,
            policy=policy,
            obsm_key=obsm_key,
            embedder=embedder,
            seed=seed,
            params=param or [],
            strata=strata,
            quota=quota,
            progress=progress,
            reference=reference,
            keep_duplicates=keep_duplicates,
            near_dup_eps=near_dup_eps,
            index_factory=index_factory,
            dup_min_genes=dup_min_genes,
            metadata_map=metadata_map,
            set_fields=set_fields or [],
        )
    report = result.report
    if as_json:
        typer.echo(json.dumps(report, default=str))
        return
    console = Console()
    console.print(summary_table(report))
    for line in overlap_lines(report):
        console.print(line)
    radius = report["covering_radius"]
    console.print(
        f"covering radius at the budget: {radius:.4g}  ({report['parameters']['policy']})"
    )
    console.print(f"wrote {report['outputs']['manifest']} and {report['outputs']['report']}")

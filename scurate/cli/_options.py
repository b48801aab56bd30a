"""Options shared by commands, defined once; and progress on stderr with rich."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

Sources = Annotated[
    list[Path] | None,
    typer.Argument(help=".h5ad files or folders of them.", show_default=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Seed = Annotated[int, typer.Option("--seed", help="Seeds every random choice.")]
ObsmKey = Annotated[
    str | None,
    typer.Option("--obsm-key", help="Use this stored embedding (X_pca, X_scVI, ...)."),
]
Embedder = Annotated[
    str, typer.Option("--embedder", help="Embedder used when no --obsm-key is given.")
]
Reference = Annotated[
    list[Path] | None,
    typer.Option(
        "--reference",
        help="A corpus you already have: a folder from `scurate index build`, or .h5ad files "
        "or folders (repeatable). Scores novelty against it; kcenter starts with it covered.",
        show_default=False,
    ),
]
NearDupEps = Annotated[
    float | None,
    typer.Option(
        "--near-dup-eps",
        help="Distance under which cells are near duplicates (default: a quarter of the "
        "median nearest-neighbour distance; `scurate score` shows the distribution).",
        show_default=False,
    ),
]
IndexFactory = Annotated[
    str | None,
    typer.Option(
        "--index-factory",
        help="FAISS index-factory string for neighbour search (default: Flat while exact "
        "search is affordable, else IVF).",
        show_default=False,
    ),
]
DupMinGenes = Annotated[
    int,
    typer.Option("--dup-min-genes", help="Fewest nonzero genes to call a cell an exact copy."),
]

Progress = Callable[[str, int, int], None]


@contextmanager
def progress_on_stderr(*, enabled: bool) -> Iterator[Progress]:
    """A ``progress(stage, done, total)`` callback drawing rich bars on stderr, or a no-op
    when disabled or when stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda stage, done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn

    bars = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update

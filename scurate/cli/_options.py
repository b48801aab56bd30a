"""What the commands share, defined once: option types (each named as the API's keyword, so
``ctx.params`` builds the job's options object), the sources or ``--example``, and progress on
stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from scurate._data.example import example_sources
from scurate._engine.options import Options
from scurate._engine.progress import LogProgress
from scurate.errors import OptionError

Sources = Annotated[
    list[Path] | None,
    typer.Argument(help=".h5ad files or folders of them.", show_default=False, metavar="SOURCES"),
]
Example = Annotated[
    bool,
    typer.Option("--example", help="Add the small example corpus shipped inside scurate."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Seed = Annotated[int, typer.Option("--seed", help="Seeds every random choice.", metavar="N")]
ObsmKey = Annotated[
    str | None,
    typer.Option(
        "--obsm-key", help="Use this stored embedding (X_pca, X_scVI, ...).", metavar="KEY"
    ),
]
Embedder = Annotated[
    str,
    typer.Option("--embedder", help="Embedder used when no --obsm-key is given.", metavar="NAME"),
]
Reference = Annotated[
    list[Path] | None,
    typer.Option(
        "--reference",
        help="A corpus you already have: a folder from `scurate index build`, or .h5ad files "
        "or folders (repeatable). Scores novelty against it; kcenter starts with it covered.",
        show_default=False,
        metavar="PATH",
    ),
]
NearDupEps = Annotated[
    float | None,
    typer.Option(
        "--near-dup-eps",
        help="Distance under which cells are near duplicates (default: a quarter of the "
        "median nearest-neighbour distance; `scurate score` shows the distribution).",
        show_default=False,
        metavar="DIST",
    ),
]
IndexFactory = Annotated[
    str | None,
    typer.Option(
        "--index-factory",
        help="FAISS index-factory string for neighbour search (default: Flat while exact "
        "search is affordable, else IVF).",
        show_default=False,
        metavar="SPEC",
    ),
]
DupMinGenes = Annotated[
    int,
    typer.Option(
        "--dup-min-genes", help="Fewest nonzero genes to call a cell an exact copy.", metavar="N"
    ),
]
MetadataMap = Annotated[
    Path | None,
    typer.Option(
        "--metadata-map",
        help="TOML file: per dataset, which column is which field; constants.",
        metavar="FILE",
    ),
]
SetFields = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="field=value for every dataset, e.g. tissue=pancreas (repeatable).",
        show_default=False,
        metavar="FIELD=VALUE",
    ),
]
KeepDuplicates = Annotated[
    bool,
    typer.Option(
        "--keep-duplicates",
        help="Let the policy choose exact copies and every near duplicate (by default it sees "
        "one kept copy and one cell per near-duplicate group).",
    ),
]


def sources_or_example(sources: Sequence[Path] | None, *, example: bool) -> list[Path]:
    """The sources given, and the example corpus with ``--example``; none is one line."""
    paths = list(sources or [])
    if example:
        paths.extend(example_sources())
    if not paths:
        msg = "no sources: give .h5ad files or folders, or --example"
        raise OptionError(msg)
    return paths


OptionsT = TypeVar("OptionsT", bound=Options)


def options_from(ctx: typer.Context, kind: type[OptionsT]) -> OptionsT:
    """The job's options object from the command's parameters, matched by name."""
    return kind.from_params(ctx.params)


Progress = Callable[[str, int, int], None]


@contextmanager
def progress_on_stderr(*, enabled: bool) -> Iterator[Progress]:
    """A ``progress(stage, done, total)`` callback: rich bars on stderr when it is a terminal;
    else (piped, redirected, a notebook's captured stderr) a line per stage every few seconds,
    so a long run keeps saying where it is. Silent when not ``enabled`` (``--json``)."""
    if not enabled:
        yield lambda stage, done, total: None
        return
    if not sys.stderr.isatty():
        with _log_lines_on_stderr():
            yield LogProgress()
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


@contextmanager
def _log_lines_on_stderr() -> Iterator[None]:
    logger = logging.getLogger("scurate.progress")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("scurate: %(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate

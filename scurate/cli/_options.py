"""What the commands share, defined once: option types (each named as the API's keyword, so
``ctx.params`` builds the job's options object), the sources or ``--example``, and progress on
stderr."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from scurate._compute.dedup import MIN_GENES
from scurate._data.example import example_sources
from scurate._engine.options import Options
from scurate._engine.outputs import prepare
from scurate._engine.progress import LogProgress
from scurate.errors import OptionError

Sources = Annotated[
    list[Path] | None,
    typer.Argument(
        help=".h5ad files, AnnData .zarr stores, TileDB-SOMA experiments, or folders of them.",
        show_default=False,
        metavar="SOURCES",
    ),
]
Params = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="Policy parameter key=value (repeatable); bench also takes policy:key=value, "
        "for one policy.",
        show_default=False,
        metavar="KEY=VALUE",
    ),
]


def option(kind: Any, default: Any, *flags: str, **info: Any) -> tuple[Any, Any]:
    """One shared option: its type as typer reads it (``Annotated[kind, typer.Option]``) and
    its default. No placeholder shows for a default of None."""
    info.setdefault("show_default", default is not None)
    return Annotated[kind, typer.Option(*flags, **info)], default


# Options several commands share, by the name both the command and the job's options use.
SHARED: dict[str, tuple[Any, Any]] = {
    "seed": option(int, 0, "--seed", help="Seeds every random choice.", metavar="N"),
    "reference": option(
        list[Path] | None,
        None,
        "--reference",
        help="A corpus you already have: a folder from `scurate index build`, or .h5ad files "
        "or folders (repeatable). Scores novelty against it; kcenter starts with it covered.",
        metavar="PATH",
    ),
    "obsm_key": option(
        str | None,
        None,
        "--obsm-key",
        help="Use this stored embedding (X_pca, X_scVI, ...).",
        metavar="KEY",
    ),
    "embedder": option(
        str, "pca", "--embedder", help="Embedder used when no --obsm-key is given.", metavar="NAME"
    ),
    "keep_duplicates": option(
        bool,
        False,
        "--keep-duplicates",
        help="Let the policy choose exact copies and every near duplicate (by default it sees "
        "one kept copy and one cell per near-duplicate group).",
    ),
    "near_dup_eps": option(
        float | None,
        None,
        "--near-dup-eps",
        help="Distance under which cells are near duplicates (default: a quarter of the "
        "median nearest-neighbour distance; `scurate score` shows the distribution).",
        metavar="DIST",
    ),
    "index_factory": option(
        str | None,
        None,
        "--index-factory",
        help="FAISS index-factory string for neighbour search (default: Flat while exact "
        "search is affordable, else IVF).",
        metavar="SPEC",
    ),
    "dup_min_genes": option(
        int,
        MIN_GENES,
        "--dup-min-genes",
        help="Fewest nonzero genes to call a cell an exact copy.",
        metavar="N",
    ),
    "metadata_map": option(
        Path | None,
        None,
        "--metadata-map",
        help="TOML file: per dataset, which column is which field; constants.",
        metavar="FILE",
    ),
    "set_fields": option(
        list[str] | None,
        None,
        "--set",
        help="field=value for every dataset, e.g. tissue=pancreas (repeatable).",
        metavar="FIELD=VALUE",
    ),
    "threads": option(
        int | None,
        None,
        "--threads",
        help="Threads for OpenMP and BLAS (default: the cores this process may use).",
        metavar="N",
    ),
    "backend": option(
        str,
        "local",
        "--backend",
        help="Where the per-source work runs (obs, obsm, counts hashes and QC, PCA projection): "
        "local, or ray (Ray tasks; pip install 'scurate[ray]'). Same manifest either way.",
        metavar="local|ray",
    ),
    "ray_address": option(
        str | None,
        None,
        "--ray-address",
        help="With --backend ray: the cluster to connect to (ray://HOST:10001, auto); default: "
        "a local Ray with --threads CPUs.",
        metavar="ADDRESS",
    ),
    "work_dir": option(
        Path | None,
        None,
        "--work-dir",
        help="Folder that keeps the scored pool (embedding, duplicates, scores) for later runs "
        "on the same sources and options (default: scurate-work beside the output folder).",
        metavar="FOLDER",
    ),
    "no_cache": option(
        bool, False, "--no-cache", help="Neither read nor keep the scored pool in the work dir."
    ),
    "counts_layer": option(
        str | None,
        None,
        "--counts-layer",
        help="Where the raw counts are: X, raw (.raw.X) or a layer's name (default: the first "
        "of X, raw and layers['counts'] that holds whole numbers).",
        metavar="NAME",
    ),
    "obs_filter": option(
        str | None,
        None,
        "--obs-filter",
        help="Value filter on obs for TileDB-SOMA sources, e.g. \"tissue_general == 'lung'\".",
        metavar="EXPR",
    ),
    "qc": option(
        str | None,
        None,
        "--qc",
        help="QC filters KEY=VALUE[,...]: min_genes, min_counts, max_mito, doublets "
        "(auto, off or a score); unset keys take per-assay defaults (README); off: no QC.",
        show_default=False,
        metavar="SPEC",
    ),
    "primary_only": option(
        bool,
        False,
        "--primary-only",
        help="Choose only cells whose is_primary_data is not false (CELLxGENE marks cells "
        "deposited again elsewhere with false).",
    ),
    "example": option(
        bool, False, "--example", help="Add the small example corpus shipped inside scurate."
    ),
    "as_json": option(bool, False, "--json", help="Print the result as JSON on stdout."),
    "overwrite": option(
        bool, False, "--overwrite", help="Replace an earlier run's outputs in the -o folder."
    ),
}
WORK_DIR = "scurate-work"  # beside the output folder, unless --work-dir names another
# how every job that scores a pool embeds it, finds duplicates and reads its metadata
Strata = Annotated[
    str | None,
    typer.Option(
        "--strata",
        help="Columns COL[,COL...] (manifest, else obs) whose values divide the budget into "
        "strata, each with its quota.",
        show_default=False,
        metavar="COLS",
    ),
]
Quota = Annotated[
    str,
    typer.Option(
        "--quota",
        help="With --strata: proportional, equal or min:N cells per stratum.",
        metavar="RULE",
    ),
]

POOL = (
    "obsm_key",
    "embedder",
    "near_dup_eps",
    "index_factory",
    "dup_min_genes",
    "threads",
    "counts_layer",
    "obs_filter",
    "qc",
)
METADATA = ("metadata_map", "set_fields")
WORK = ("work_dir", "no_cache")
BACKEND = ("backend", "ray_address")  # jobs whose per-source work can run as Ray tasks
# jobs that write a run into an output folder
WRITES = ("overwrite",)  # jobs whose scored pool a later run can reuse


F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")
OptionsT = TypeVar("OptionsT", bound=Options)


def with_options(*names: str) -> Callable[[F], F]:
    """Add the :data:`SHARED` options ``names`` to a command's signature, after its own: typer
    shows and parses them, and ``ctx.params`` carries them to the job's options object, so a
    command declares only what is its own (it takes the rest as ``**shared``)."""

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        added = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind
            )
            for name in names
            for kind, default in [SHARED[name]]
        ]
        command.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        return command

    return decorate


def run_job(
    ctx: typer.Context,
    kind: type[OptionsT],
    job: Callable[..., R],
    write: Callable[[R, Path], None],
) -> R:
    """What a job's command does: its sources (or ``--example``), its options object from the
    parameters, the output folder checked before any work, the job with progress on stderr,
    then its outputs written."""
    params = dict(ctx.params)
    paths = sources_or_example(params["sources"], example=params["example"])
    folder = Path(params["out"])
    if params.get("no_cache"):
        params["work_dir"] = None
    elif "work_dir" in params and params["work_dir"] is None:
        params["work_dir"] = folder.resolve().parent / WORK_DIR
    opts = kind.from_params(params)  # a bad option first, then the folder, then any work
    prepare(folder, overwrite=bool(params.get("overwrite")))
    with progress_on_stderr(enabled=not params["as_json"]) as progress:
        result = job(paths, opts, progress=progress)
    write(result, folder)
    return result


def sources_or_example(sources: Sequence[Path] | None, *, example: bool) -> list[Path]:
    """The sources given, and the example corpus with ``--example``; none is one line."""
    paths = list(sources or [])
    if example:
        paths.extend(example_sources())
    if not paths:
        msg = (
            "no sources: give .h5ad files, .zarr stores, SOMA experiments or folders, or --example"
        )
        raise OptionError(msg)
    return paths


def keywords_of(function: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    """The command's ``params`` that ``function`` takes as keyword-only arguments, by name."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    taken = {n for n, p in inspect.signature(function).parameters.items() if p.kind is keyword}
    return {name: value for name, value in params.items() if name in taken}


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

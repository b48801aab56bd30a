"""scurate materialize: the selected cells written into h5ad or zarr shards for a trainer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from scurate._feed.shards import SHARD_SIZE
from scurate._feed.shards import materialize as write_shards
from scurate.cli._options import keywords_of, progress_on_stderr, with_options
from scurate.errors import OptionError

Selection = Annotated[
    Path,
    typer.Argument(
        help="An output folder of `scurate select` (or its manifest.parquet).",
        metavar="SELECTION",
    ),
]
ShardsDir = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        "--output",
        help="Folder for the shards and index.json.",
        show_default=False,
        metavar="FOLDER",
    ),
]
Format = Annotated[
    str,
    typer.Option(
        "--format",
        help="h5ad or zarr shards, or annbatch: an annbatch collection written by annbatch "
        "(shuffled by --seed; needs Python >= 3.12 and scurate[annbatch]).",
        metavar="FORMAT",
    ),
]
ShardSize = Annotated[
    int,
    typer.Option("--shard-size", help="Cells per shard (the last has fewer).", metavar="N"),
]
Shuffle = Annotated[
    bool,
    typer.Option(
        "--shuffle", help="Shuffle the cells (as CellLoader does, by --seed); else priority order."
    ),
]
Budget = Annotated[
    int | None,
    typer.Option(
        "--budget",
        "-b",
        help="Only the first N cells of the priority order.",
        show_default=False,
        metavar="N",
    ),
]
Genes = Annotated[
    str,
    typer.Option(
        "--genes",
        help="'shared' (the genes every source has) or a file of gene names, one a line.",
        metavar="GENES",
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace shards made earlier in -o with other options."),
]
Root = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="The folder the sources were moved to, together (each is looked for at its path "
        "relative to the folder they all shared).",
        metavar="FOLDER",
        show_default=False,
    ),
]


@with_options("seed", "as_json")
def materialize(
    ctx: typer.Context,
    selection: Selection,
    out: ShardsDir = None,
    format: Format = "h5ad",
    shard_size: ShardSize = SHARD_SIZE,
    shuffle: Shuffle = False,
    budget: Budget = None,
    genes: Genes = "shared",
    overwrite: Overwrite = False,
    root: Root = None,
    **shared: Any,
) -> None:
    """Write the selected cells into shards on one gene order, with labels, weights and ranks.

    A rerun with the same options skips the shards already complete, so an interrupted run
    resumes where it stopped.

    Example: scurate materialize out/ --format h5ad --shard-size 100000 -o shards/

    Example: scurate materialize out/ --format annbatch -o collection/  (read with
    annbatch.Loader().use_collection(DatasetCollection("collection/collection.zarr")))
    """
    if out is None:
        msg = "-o/--out: give a folder for the shards"
        raise OptionError(msg)
    given = keywords_of(write_shards, ctx.params)  # --format ... --overwrite, by name
    with progress_on_stderr(enabled=not shared["as_json"]) as progress:
        result = write_shards(selection, out, progress=progress, **given)
    index = result.index
    if shared["as_json"]:
        summary = {
            k: index[k] for k in ("format", "n_cells", "n_shards", "shards", "genes", "options")
        }
        typer.echo(json.dumps({**summary, "written": result.written, "skipped": result.skipped}))
        return
    skipped = f" ({result.skipped} already complete, kept)" if result.skipped else ""
    what = (
        f"an annbatch collection of {index['n_shards']} datasets, {out / index['collection']}"
        if format == "annbatch"
        else f"{index['n_shards']} {format} shards in {out}"
    )
    typer.echo(
        f"wrote {index['n_cells']} cells on {index['genes']['n']} genes into "
        f"{what}{skipped}; index: {out / 'index.json'}"
    )

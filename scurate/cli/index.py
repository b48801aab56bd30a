"""scurate index build: embed and index a corpus once, for select --reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from scurate._engine.jobs import build_index_with
from scurate._engine.options import IndexOptions
from scurate.cli._errors import Command, Group, user_errors
from scurate.cli._options import (
    Sources,
    options_from,
    progress_on_stderr,
    sources_or_example,
    with_options,
)

app = typer.Typer(
    help="Index a corpus you already have, for `select --reference`.",
    no_args_is_help=True,
    cls=Group,
)

IndexOut = Annotated[
    Path,
    typer.Option(
        "--out", "-o", help="Folder to write the index into (e.g. corpus.idx).", metavar="FOLDER"
    ),
]


@with_options("obsm_key", "seed", "index_factory", "threads", "counts_layer", "example", "as_json")
def build(
    ctx: typer.Context,
    corpus: Sources = None,
    out: IndexOut = ...,  # type: ignore[assignment]
    **shared: Any,
) -> None:
    """Embed a corpus (PCA fitted on it, or --obsm-key) and save its FAISS index.

    Example: scurate index build atlas/ -o atlas.idx
    """
    paths = sources_or_example(corpus, example=shared["example"])
    opts = options_from(ctx, IndexOptions)
    with progress_on_stderr(enabled=not shared["as_json"]) as progress:
        info = build_index_with(paths, opts, out=out, progress=progress)
    if shared["as_json"]:
        typer.echo(json.dumps(info, default=str))
        return
    how = f"obsm['{opts.obsm_key}']" if opts.obsm_key else "PCA of the counts"
    typer.echo(
        f"indexed {info['n_cells']:,} cells of {len(info['datasets'])} datasets "
        f"({info['n_dims']} dims, {how}, FAISS {info['index']['factory']}) in {info['path']}"
    )


app.command(cls=Command)(user_errors(build))

"""scurate index build: embed and index a corpus once, for select --reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from scurate._engine import jobs as api
from scurate.cli._errors import user_errors
from scurate.cli._options import AsJson, IndexFactory, ObsmKey, Seed, Sources, progress_on_stderr
from scurate.errors import OptionError

app = typer.Typer(
    help="Index a corpus you already have, for `select --reference`.", no_args_is_help=True
)

IndexOut = Annotated[
    Path, typer.Option("--out", "-o", help="Folder to write the index into (e.g. corpus.idx).")
]


def build(
    corpus: Sources = None,
    out: IndexOut = ...,  # type: ignore[assignment]
    obsm_key: ObsmKey = None,
    seed: Seed = 0,
    index_factory: IndexFactory = None,
    as_json: AsJson = False,
) -> None:
    """Embed a corpus (PCA fitted on it, or --obsm-key) and save its FAISS index.

    Example: scurate index build atlas/ -o atlas.idx
    """
    paths = list(corpus or [])
    if not paths:
        msg = "no corpus: give .h5ad files or folders"
        raise OptionError(msg)
    with progress_on_stderr(enabled=not as_json) as progress:
        info = api.build_index(
            paths,
            out=out,
            obsm_key=obsm_key,
            seed=seed,
            index_factory=index_factory,
            progress=progress,
        )
    if as_json:
        typer.echo(json.dumps(info, default=str))
        return
    how = f"obsm['{obsm_key}']" if obsm_key else "PCA of the counts"
    typer.echo(
        f"indexed {info['n_cells']:,} cells of {len(info['datasets'])} datasets "
        f"({info['n_dims']} dims, {how}, FAISS {info['index']['factory']}) in {info['path']}"
    )


app.command()(user_errors(build))

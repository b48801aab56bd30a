"""A reference corpus: cells a team already has, indexed once, that new cells are scored against.

``scurate index build CORPUS -o corpus.idx`` writes a folder:

| file | what |
|---|---|
| ``scurate-index.json`` | format version, cell count, dimensions, how cells were embedded |
| ``index.faiss`` | the FAISS index of the corpus's embeddings |
| ``cells.parquet`` | ``cell_id`` and ``dataset_id`` of each indexed cell, in index order |
| ``pca.npz`` | the PCA model (genes, variable genes, loadings, center), when PCA embedded it |

``index build`` writes into a new path, an empty folder or an earlier index (a folder holding
only these files, and the hidden ``.partial`` names of an interrupted write); it refuses any
other folder, and a symbolic link, and never removes a file it did not write.

New cells are embedded with the reference's own model (as scArches or Symphony map a query
onto a reference), so that their distance to the nearest reference cell (``novelty``) is
measured in one space. With ``--obsm-key``, the reference and the new cells must both carry
that key, of the same width.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._compute.embed import Embedding, PcaModel, fit_pca, from_obsm, project
from scurate._compute.faiss_index import build_index, nearest, read_index, write_index
from scurate._data.atomic import atomic, check_writable, is_partial, remove, write_json
from scurate._data.manifest import cell_ids as cell_ids_of
from scurate._data.sources import ReadOptions, Source, open_sources
from scurate.errors import InputError

INDEX_VERSION = 1
MARKER = "scurate-index.json"
FILES = frozenset({MARKER, "index.faiss", "cells.parquet", "pca.npz"})  # all a folder holds

Progress = Any


@dataclass
class Reference:
    """An indexed corpus and what embeds new cells onto it."""

    index: Any
    cell_ids: NDArray[np.object_]
    dataset_ids: NDArray[np.object_]
    n_dims: int
    model: PcaModel | None  # None when the corpus was embedded from obsm
    obsm_key: str | None
    info: dict[str, Any] = field(default_factory=dict)

    def embed(self, sources: Sequence[Source], *, progress: Progress = None) -> Embedding:
        """The new cells of ``sources`` on this reference's embedding."""
        if self.obsm_key is not None:
            embedding = from_obsm(sources, self.obsm_key)
        else:
            assert self.model is not None
            embedding = project(sources, self.model, progress=progress or _quiet)
            embedding.info["model"] = "the reference's PCA"
        if embedding.values.shape[1] != self.n_dims:
            msg = (
                f"`reference`: its cells have {self.n_dims} dimensions but the new cells have "
                f"{embedding.values.shape[1]}"
            )
            raise InputError(msg)
        return embedding

    def nearest(self, values: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Distance from each row to its nearest reference cell, and that cell's position."""
        return nearest(self.index, values)


def _quiet(stage: str, done: int, total: int) -> None:
    return None


def build_reference(
    paths: Sequence[str | os.PathLike[str]],
    *,
    readers: dict[str, Any] | None = None,
    read: ReadOptions | None = None,
    obsm_key: str | None = None,
    seed: int = 0,
    index_factory: str | None = None,
    progress: Progress = None,
) -> Reference:
    """Embed the corpus (PCA fitted on it, or a stored obsm key) and index it with FAISS."""
    progress = progress or _quiet
    sources = open_sources(paths, readers, read)
    if obsm_key is not None:
        embedding = from_obsm(sources, obsm_key)
        model = None
    else:
        model = fit_pca(sources, rng=np.random.default_rng(seed), progress=progress)
        embedding = project(sources, model, progress=progress)
    index, index_info = build_index(embedding.values, factory=index_factory)
    cell_ids = np.concatenate([cell_ids_of(s.dataset_id, s.obs_names) for s in sources]).astype(
        object
    )
    datasets = np.concatenate([np.full(s.n_obs, s.dataset_id, dtype=object) for s in sources])
    info = {
        "index_version": INDEX_VERSION,
        "n_cells": len(cell_ids),
        "n_dims": int(embedding.values.shape[1]),
        "obsm_key": obsm_key,
        "seed": seed,
        "index": index_info,
        "sources": [str(s.path) for s in sources],
        "datasets": sorted({str(d) for d in datasets}),
        "embedding": {k: v for k, v in embedding.info.items() if k != "genes_found_in"},
    }
    return Reference(
        index, cell_ids, datasets, int(embedding.values.shape[1]), model, obsm_key, info
    )


def _ours(entry: Path) -> bool:
    """A file that :func:`save_reference` writes in an index folder (or its temporary name)."""
    if is_partial(entry):
        return True
    return entry.name in FILES and entry.is_file() and not entry.is_symlink()


def index_folder(out: str | os.PathLike[str]) -> Path:
    """The folder ``out`` to write an index into, checked (before anything is computed, and
    again when writing): a new path, an empty folder or an earlier index; one line otherwise."""
    target = Path(out)
    if target.is_symlink():
        msg = f"out={str(target)!r}: is a symbolic link; give the folder itself"
        raise InputError(msg)
    if not target.exists():
        check_writable(target)
        return target
    if not target.is_dir():
        msg = f"out={str(target)!r}: exists and is not a folder"
        raise InputError(msg)
    others = sorted(e.name for e in target.iterdir() if not _ours(e))
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        msg = (
            f"out={str(target)!r}: exists and is not a scurate index (it holds {shown}, which "
            "index build did not write); give another path or an empty folder"
        )
        raise InputError(msg)
    return target


def _clear(target: Path) -> None:
    """Remove the earlier index at ``target``: its files, then the folder, which must then be
    empty; a file that appeared meanwhile is left there, with the folder, and said in one line."""
    if not target.is_dir():
        return
    for entry in target.iterdir():
        if _ours(entry):
            remove(entry)
    try:
        target.rmdir()
    except OSError as exc:
        left = ", ".join(sorted(e.name for e in target.iterdir())) if target.exists() else ""
        msg = (
            f"out={str(target)!r}: cannot replace the index there ({exc.strerror}"
            + (f": it now holds {left}" if left else "")
            + "); nothing else was removed"
        )
        raise InputError(msg) from exc


def save_reference(ref: Reference, out: str | os.PathLike[str]) -> Path:
    """Write the reference folder under a temporary name, then rename it into place (over an
    earlier index, whose files alone are removed; see :func:`index_folder`)."""
    target = index_folder(out)
    with atomic(target) as tmp:
        tmp.mkdir(parents=True)
        write_index(ref.index, tmp / "index.faiss")
        pl.DataFrame(
            {"cell_id": ref.cell_ids.astype(str), "dataset_id": ref.dataset_ids.astype(str)}
        ).write_parquet(tmp / "cells.parquet")
        meta = dict(ref.info)
        if ref.model is not None:
            np.savez(
                tmp / "pca.npz",
                genes=ref.model.genes.astype(str),
                kind=np.array(ref.model.kind),
                variable=ref.model.variable,
                loadings=ref.model.loadings,
                center=ref.model.center,
                mean=ref.model.mean,
            )
            meta["model_info"] = ref.model.info
        write_json(meta, tmp / MARKER)
        index_folder(target)  # what is there now: a folder of the user's is never replaced
        _clear(target)  # so that the rename below finds nothing to remove
    return target


def is_index(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / MARKER).is_file()


def load_reference(path: str | os.PathLike[str]) -> Reference:
    """Read a folder written by :func:`save_reference`, or one line naming what is wrong."""
    folder = Path(path)
    try:
        meta = json.loads((folder / MARKER).read_text())
        if not isinstance(meta, dict):
            msg = f"{folder}: {MARKER} is not a JSON object"
            raise InputError(msg)
        version = meta.get("index_version")
        if version != INDEX_VERSION:
            msg = f"{folder}: index format {version}; this scurate reads {INDEX_VERSION}"
            raise InputError(msg)
        index = read_index(folder / "index.faiss")
        cells = pl.read_parquet(folder / "cells.parquet")
        model = None
        if meta.get("obsm_key") is None:
            # our own handle: numpy leaves its file open when the archive is damaged
            with (
                (folder / "pca.npz").open("rb") as handle,
                np.load(handle, allow_pickle=False) as z,
            ):
                model = PcaModel(
                    genes=z["genes"].astype(object),
                    kind=str(z["kind"]),
                    variable=z["variable"].astype(np.int64),
                    loadings=z["loadings"].astype(np.float32),
                    center=z["center"].astype(np.float32),
                    mean=z["mean"].astype(np.float32),
                    info=meta.get("model_info", {}),
                )
    except InputError:
        raise
    except (
        OSError,
        KeyError,
        ValueError,
        RuntimeError,
        zipfile.BadZipFile,
        pl.exceptions.PolarsError,
    ) as exc:
        msg = f"{folder}: cannot read the scurate index ({type(exc).__name__}: {exc})"
        raise InputError(msg) from exc
    _check_parts(folder, meta, index, cells, model)
    return Reference(
        index,
        cells["cell_id"].to_numpy().astype(object),
        cells["dataset_id"].to_numpy().astype(object),
        int(meta["n_dims"]),
        model,
        meta.get("obsm_key"),
        meta,
    )


def _check_parts(
    folder: Path, meta: dict[str, Any], index: Any, cells: pl.DataFrame, model: PcaModel | None
) -> None:
    """The parts of an index folder agree with each other, or one line naming what does not."""
    problems: list[str] = []
    n_dims = meta.get("n_dims")
    if isinstance(n_dims, bool) or not isinstance(n_dims, int) or n_dims < 1:
        problems.append(f"{MARKER} gives n_dims={n_dims!r}, not a positive whole number")
    elif index.d != n_dims:
        problems.append(f"index.faiss has {index.d} dimensions but {MARKER} says {n_dims}")
    if missing := {"cell_id", "dataset_id"} - set(cells.columns):
        problems.append(f"cells.parquet has no {', '.join(sorted(missing))} column")
    if index.ntotal != cells.height:
        problems.append(f"index.faiss holds {index.ntotal} cells but cells.parquet {cells.height}")
    if model is not None and not problems:
        problems.extend(_model_problems(model, int(index.d)))
    if problems:
        msg = f"{folder}: a damaged scurate index ({problems[0]})"
        raise InputError(msg)


def _model_problems(model: PcaModel, n_dims: int) -> list[str]:
    n_genes, n_var = len(model.genes), len(model.variable)
    checks = [
        (model.genes.ndim == 1 and n_genes > 0, "pca.npz holds no gene list"),
        (model.kind in ("ensembl", "symbol"), f"pca.npz: gene kind {model.kind!r}"),
        (
            model.variable.ndim == 1
            and n_var > 0
            and bool(np.all((model.variable >= 0) & (model.variable < n_genes)))
            and len(np.unique(model.variable)) == n_var,
            f"pca.npz: variable genes are not distinct positions in its {n_genes} genes",
        ),
        (
            model.loadings.shape == (n_var, n_dims),
            f"pca.npz: loadings of shape {model.loadings.shape}, expected ({n_var}, {n_dims})",
        ),
        (model.center.shape == (n_dims,), f"pca.npz: center of shape {model.center.shape}"),
        (model.mean.shape == (n_var,), f"pca.npz: mean of shape {model.mean.shape}"),
    ]
    problems = [text for ok, text in checks if not ok]
    if not problems:
        finite = all(np.isfinite(a).all() for a in (model.loadings, model.center, model.mean))
        if not finite:
            problems.append("pca.npz holds NaN or inf")
    return problems


def open_reference(
    paths: Sequence[str | os.PathLike[str]], *, obsm_key: str | None = None, **build: Any
) -> Reference:
    """A saved index (one folder written by ``scurate index build``), or a corpus of h5ad
    files and folders indexed now (``build`` takes the rest of :func:`build_reference`'s
    options)."""
    if len(paths) == 1 and is_index(paths[0]):
        ref = load_reference(paths[0])
        if obsm_key != ref.obsm_key:
            how = f"obsm['{ref.obsm_key}']" if ref.obsm_key else "PCA of its counts"
            given = f"obsm_key={obsm_key!r}" if obsm_key else "no `obsm_key`"
            msg = f"reference='{paths[0]}': it was embedded with {how}, but {given} was given"
            raise InputError(msg)
        return ref
    return build_reference(paths, obsm_key=obsm_key, **build)

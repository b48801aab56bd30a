"""Shards of a selection: the selected cells written once into h5ad or zarr files on one gene
order, for trainers that read files rather than a loader.

``materialize(out, shards_dir)`` reads the cells through :class:`scurate.loader.CellLoader`
(the same reading path, the same shuffle) and writes ``shard-00000.h5ad``, ... each under a
temporary name then renamed, and ``index.json`` after every shard. A rerun with the same
options skips the shards the index lists as complete (their X shape checked), so an
interrupted run resumes; a rerun with other options is refused unless ``overwrite``.

Nothing in an existing ``index.json`` is trusted: a shard it lists is only ever this folder's
own ``shard-NNNNN.FORMAT`` (any other path there is refused, never read or removed), and a
plain file or folder, not a link. The size and modification time of each source file are
recorded as a run starts; a resumed run whose sources changed since is refused, as is a run
whose sources changed while it read them.

Each shard: X CSR float32 (cells x genes, ``var_names`` the gene order), ``obs_names`` the
cell ids, obs ``dataset_id``, ``source_row`` (the cell's row in its source file),
``selection_rank``, ``weight`` and the canonical label columns (with their ontology term ids).

``format="annbatch"`` writes an annbatch collection instead, with annbatch's own writer
(``annbatch.DatasetCollection.add_adatas``: cells shuffled across the selection by ``seed``,
written as zarr v3 datasets of ``shard_size`` cells in sharded, chunked arrays, as
``annbatch.Loader.use_collection`` reads them): ``out/collection.zarr``, staged from zarr
shards of the selection in priority order, and ``out/index.json``. Its obs holds every manifest
column of the cell (QC, scores, ``soma_joinid``, ``policy``, ...) besides those above. annbatch
needs Python >= 3.12 (``pip install 'scurate[annbatch]'``). A rerun whose index says the same
options and complete is skipped; anything else in ``out`` needs ``overwrite``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from scurate._data import atomic
from scurate._data import manifest as mf
from scurate._feed.loader import Batch, CellLoader
from scurate.errors import InputError, OptionError

log = logging.getLogger(__name__)

FORMATS = ("h5ad", "zarr", "annbatch")
INDEX = "index.json"
SHARD_SIZE = 100_000
LABELS = (
    *mf.CANONICAL_FIELDS,
    *(f"{name}_ontology_term_id" for name in mf.ONTOLOGY_FIELDS),
)
COLLECTION = "collection.zarr"  # format="annbatch": the annbatch collection in ``out``
# format="annbatch": the rest of the manifest's columns, in obs beside the labels
MANIFEST_OBS = tuple(
    c
    for c in mf.MANIFEST_SCHEMA
    if c not in (*LABELS, "cell_id", "dataset_id", "row", "selected", "selection_rank", "weight")
)
ANNBATCH_INSTALL = "pip install 'scurate[annbatch]'"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Materialized:
    """What a run of :func:`materialize` left in ``out``: ``index`` is ``index.json``."""

    out: Path
    index: dict[str, Any]
    written: int  # shards this run wrote
    skipped: int  # shards found complete from an earlier run

    @property
    def n_cells(self) -> int:
        return int(self.index["n_cells"])


def read_gene_list(path: str | os.PathLike[str]) -> list[str]:
    """Gene names from a text file, one a line (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such gene list file (give 'shared' or a file with one gene a line)"
        raise InputError(msg)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read the gene list ({type(exc).__name__}: {exc})"
        raise InputError(msg) from exc
    genes = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not genes:
        msg = f"{path}: the gene list is empty"
        raise InputError(msg)
    return genes


def _digest(values: Sequence[str] | np.ndarray) -> str:
    return hashlib.sha256("\n".join(map(str, values)).encode()).hexdigest()


def _shard_name(k: int, fmt: str) -> str:
    return f"shard-{k:05d}.{fmt}"


def _ours(path: Path) -> bool:
    """A file this module writes in a shards folder (what ``overwrite`` may remove)."""
    name = path.name
    return (
        name == INDEX
        or (name.startswith("shard-") and name.endswith((".h5ad", ".zarr")))
        or atomic.is_partial(path)
    )


def _x_shape(path: Path, fmt: str) -> tuple[int, int] | None:
    """The shape a complete shard records for X, or None where it cannot be read."""
    try:
        if fmt == "h5ad":
            import h5py

            with h5py.File(path, "r") as f:
                shape = f["X"].attrs["shape"]
        else:
            import zarr

            shape = zarr.open_group(str(path), mode="r")["X"].attrs["shape"]
        return int(shape[0]), int(shape[1])
    except Exception:  # noqa: BLE001 - any failure means: not a complete shard, write it again
        return None


def _write_json(data: dict[str, Any], path: Path) -> None:
    atomic.write_text(json.dumps(data, indent=1), path)


def _obs_column(values: np.ndarray, dtype: Any) -> Any:
    """A manifest column's values (objects, None where null) as anndata writes them: strings
    categorical, numbers as numbers (nullable where null), booleans nullable."""
    if dtype == pl.String or dtype is None:
        return pd.Categorical(values)
    if dtype == pl.Boolean:
        return pd.array(values, dtype="boolean")
    if dtype.is_integer():
        return pd.array(values, dtype="Int64")
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(np.float32)


def _shard(batch: Batch, genes: np.ndarray, labels: Sequence[str]) -> Any:
    import anndata as ad

    obs = pd.DataFrame(
        {
            "dataset_id": pd.Categorical(batch.dataset_id.astype(str)),
            "source_row": batch.row,
            "selection_rank": batch.selection_rank,
            "weight": batch.weight,
            **{c: _obs_column(batch.labels[c], mf.MANIFEST_SCHEMA.get(c)) for c in labels},
        },
        index=pd.Index(batch.cell_id.astype(str)),
    )
    var = pd.DataFrame(index=pd.Index(genes.astype(str)))
    return ad.AnnData(X=batch.X, obs=obs, var=var)


def _write(adata: Any, path: Path, fmt: str) -> None:
    if fmt == "h5ad":
        adata.write_h5ad(path)
        return
    import anndata as ad

    # zarr v3, with X's arrays in a few shard files rather than one file a chunk; said
    # explicitly where this anndata has the settings (it warns while they are unset; 0.13
    # warns that they go away, zarr v3 becoming its default)
    wanted = {"zarr_write_format": 3, "auto_shard_zarr_v3": True}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This setting will be removed", DeprecationWarning)
        settings = {k: v for k, v in wanted.items() if hasattr(ad.settings, k)}
        # anndata consolidates the metadata, which zarr v3 reads but calls non-standard
        warnings.filterwarnings("ignore", "Consolidated metadata is currently not part")
        with ad.settings.override(**settings):
            adata.write_zarr(path)


@contextmanager
def _only_writer(out: Path) -> Iterator[None]:
    """Hold a lock on the folder ``out`` (the folder itself: nothing is left in it) while
    shards are written: a second materialize into the same folder is one line, not shards of
    two runs interleaved."""
    if out.exists() and not out.is_dir():
        yield  # _prepare says what is wrong
        return
    atomic.check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            msg = (
                f"{out}: another materialize is writing into this folder; wait for it to "
                "finish, or give another folder"
            )
            raise InputError(msg) from exc
        yield
    finally:
        os.close(fd)


def _prepare(
    out: Path, plan: dict[str, Any], *, overwrite: bool
) -> tuple[dict[int, dict[str, Any]], Any]:
    """Make ``out`` ready for ``plan``; return the complete shards an earlier run left, and the
    source files it recorded (see :func:`_source_files`)."""
    if out.exists() and not out.is_dir():
        msg = f"{out}: exists and is not a folder"
        raise OptionError(msg)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / INDEX
    entries = list(out.iterdir())
    if overwrite:
        for entry in entries:
            if _ours(entry):
                atomic.remove(entry)
        return {}, None
    for entry in entries:  # what an interrupted run was writing
        if atomic.is_partial(entry):
            atomic.remove(entry)
    if not index_path.is_file():
        if any(not atomic.is_partial(e) for e in entries):
            msg = (
                f"{out}: not empty and holds no {INDEX} of scurate materialize; "
                "give another folder or --overwrite"
            )
            raise OptionError(msg)
        return {}, None
    try:
        earlier = json.loads(index_path.read_text())
        before = {k: earlier[k] for k in plan}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"{index_path}: not an index of scurate materialize ({type(exc).__name__}: {exc})"
        raise OptionError(msg) from exc
    if before != plan:
        key = next(k for k in plan if before[k] != plan[k])
        msg = (
            f"{out}: holds shards made with other {key} ({_show(before[key], plan[key])}); "
            "give another folder or --overwrite"
        )
        raise OptionError(msg)
    done = {}
    n_cells, size = plan["selection"]["n_cells"], plan["options"]["shard_size"]
    for shard in _listed(index_path, earlier, plan["format"], -(-n_cells // size)):
        path = out / shard["file"]
        shape = None if path.is_symlink() else _x_shape(path, plan["format"])
        n_obs = min(size, n_cells - shard["shard"] * size)
        if shard["n_obs"] == n_obs and shape == (n_obs, plan["genes"]["n"]):
            done[shard["shard"]] = shard
        else:
            log.warning("%s: incomplete or unreadable, writing it again", path)
    return done, earlier.get("source_files")


def _listed(
    index_path: Path, earlier: dict[str, Any], fmt: str, n_shards: int
) -> list[dict[str, Any]]:
    """The shards ``index.json`` lists, each checked to be one of the ``n_shards`` shard files
    of this folder."""
    entries = earlier.get("shards", [])
    try:
        for entry in entries:
            shard, file, n_obs = entry["shard"], entry["file"], entry["n_obs"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (shard, n_obs)):
                msg = f"shard {shard!r} of {n_obs!r} cells"
                raise TypeError(msg)
            if not 0 <= shard < n_shards or file != _shard_name(shard, fmt):
                msg = (
                    f"{index_path}: lists {file!r} as shard {shard}; only this folder's "
                    f"{_shard_name(0, fmt)} to {_shard_name(n_shards - 1, fmt)} are read; "
                    "give another folder or --overwrite"
                )
                raise OptionError(msg)
    except (KeyError, TypeError) as exc:
        msg = f"{index_path}: not an index of scurate materialize ({type(exc).__name__}: {exc})"
        raise OptionError(msg) from exc
    return list(entries)


def _source_files(sources: dict[str, str]) -> dict[str, dict[str, int]]:
    """The size and modification time (ns) of each source file, as the manifest names it."""
    found = {}
    for name in sorted(set(sources.values())):
        try:
            stat = Path(name).stat()
        except OSError as exc:
            msg = f"{name}: cannot read the source ({exc.strerror})"
            raise InputError(msg) from exc
        found[name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return found


def _unchanged(then: Any, now: dict[str, dict[str, int]], why: str) -> None:
    """One line naming the first source file whose size or modification time differ."""
    for name, current in now.items():
        before = then.get(name) if isinstance(then, dict) else None
        if before != current:
            if not isinstance(before, dict):
                what = "not recorded then"
            elif before.get("size") != current["size"]:
                what = f"{before.get('size')} bytes then, {current['size']} now"
            else:
                what = "modified since"
            msg = f"{name}: the source changed {why} ({what}); give another folder or --overwrite"
            raise InputError(msg)


def _show(before: Any, now: Any) -> str:
    if isinstance(before, dict) and isinstance(now, dict):
        key = next((k for k in now if before.get(k) != now[k]), None)
        if key is not None:
            return f"{key}: {before.get(key)!r} there, {now[key]!r} now"
    return f"{before!r} there, {now!r} now"


def materialize(
    selection: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    format: str = "h5ad",
    shard_size: int = SHARD_SIZE,
    shuffle: bool = False,
    seed: int = 0,
    budget: int | None = None,
    genes: str | Sequence[str] = "shared",
    overwrite: bool = False,
    root: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Materialized:
    """Write the selected cells of a ``select`` output into shards in ``out``.

    Cells come in priority order, or with ``shuffle`` in the order one epoch of
    ``CellLoader(selection, seed=seed)`` yields them (blocks of neighbouring cells permuted
    across the whole selection, then mixed within a buffer). ``budget`` keeps the first
    cells of the priority order; ``genes`` is ``"shared"``, a list of gene names or a path
    to a file of them (one a line); ``root`` is the folder the sources were moved to (see
    :class:`scurate.loader.CellLoader`). Returns what was written and skipped;
    ``out/index.json`` lists the shards with their cell counts and rank ranges.
    """
    if format not in FORMATS:
        msg = f"format={format!r}: give one of {', '.join(FORMATS)}"
        raise OptionError(msg)
    if format == "annbatch":
        _annbatch()  # the missing extra is one line before anything is read
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        msg = f"shard_size={shard_size!r}: must be a positive number of cells"
        raise OptionError(msg)
    gene_option: str | list[str]
    if isinstance(genes, os.PathLike) or (isinstance(genes, str) and genes != "shared"):
        gene_option = read_gene_list(genes)
    else:
        gene_option = genes if isinstance(genes, str) else [str(g) for g in genes]
    labels = (*LABELS, *MANIFEST_OBS) if format == "annbatch" else LABELS
    loader = CellLoader(
        selection,
        batch_size=shard_size,
        shuffle=shuffle and format != "annbatch",  # annbatch: staged in priority order
        seed=seed,
        genes=gene_option,
        labels=labels,
        budget=budget,
        root=root,
    )
    n_cells = loader.n_cells
    plan: dict[str, Any] = {
        "format": format,
        "selection": {
            "manifest": str(loader.manifest_path.resolve()),
            "n_cells": n_cells,
            "cells_sha256": _digest(loader.cell_ids),
        },
        "options": {
            "shard_size": shard_size,
            "shuffle": shuffle or format == "annbatch",  # annbatch's writer always shuffles
            "seed": seed if shuffle or format == "annbatch" else None,
            "budget": budget,
            "genes": "shared" if isinstance(gene_option, str) else "list",
            "block_size": loader.block_size,
            "buffer_size": loader.buffer_size,
        },
        "genes": {
            "kind": loader.gene_kind,
            "n": len(loader.genes),
            "sha256": _digest(loader.genes),
        },
    }
    out = Path(out)
    with _only_writer(out):
        if format == "annbatch":
            return _write_annbatch(loader, plan, out, labels, overwrite, progress)
        return _write_shards(loader, plan, out, labels, overwrite, progress)


def _annbatch() -> Any:
    """The annbatch module, or one line saying how to get it."""
    import sys

    running = tuple(sys.version_info[:2])  # a tuple, so that mypy keeps both branches
    if running < (3, 12):
        msg = (
            f"--format annbatch: annbatch needs Python >= 3.12, this is "
            f"{running[0]}.{running[1]}; use a Python 3.12 "
            f"environment with {ANNBATCH_INSTALL}"
        )
        raise OptionError(msg)
    try:
        import annbatch
    except ImportError:
        msg = f"--format annbatch needs annbatch: {ANNBATCH_INSTALL}"
        raise OptionError(msg) from None
    return annbatch


def _write_annbatch(
    loader: CellLoader,
    plan: dict[str, Any],
    out: Path,
    labels: Sequence[str],
    overwrite: bool,
    progress: Progress | None,
) -> Materialized:
    """Write the selection as an annbatch collection in ``out`` (this process alone writes
    there): zarr shards of the cells in priority order are staged, then annbatch's own writer
    shuffles them into ``collection.zarr``."""
    annbatch = _annbatch()
    index_path = out / INDEX
    for entry in out.iterdir() if out.is_dir() else ():
        if atomic.is_partial(entry):  # what an interrupted run was writing
            atomic.remove(entry)
    entries = list(out.iterdir()) if out.is_dir() else []
    if entries and not overwrite:
        try:
            earlier = json.loads(index_path.read_text())
        except (OSError, ValueError):
            earlier = None
        if (
            isinstance(earlier, dict)
            and earlier.get("complete")
            and all(earlier.get(k) == v for k, v in plan.items())
            and (out / COLLECTION).is_dir()
        ):
            _unchanged(earlier.get("source_files"), _source_files(loader.sources), "since")
            return Materialized(out=out, index=earlier, written=0, skipped=1)
        msg = (
            f"{out}: not empty (holds {sorted(e.name for e in entries)[0]!r}, not this "
            "selection's complete annbatch collection); give another folder or --overwrite"
        )
        raise OptionError(msg)
    for entry in entries:
        if entry.name in (INDEX, COLLECTION) or _ours(entry):
            atomic.remove(entry)
    if any(out.iterdir()):
        msg = f"{out}: holds files materialize did not write; give another folder"
        raise OptionError(msg)
    files = _source_files(loader.sources)
    n_cells, shard_size = loader.n_cells, plan["options"]["shard_size"]
    order = loader.positions()
    stage = atomic.partial_name(out / "staging")
    atomic.remove(stage)
    stage.mkdir()
    staged = []
    n_stage = -(-n_cells // shard_size)
    for k in range(n_stage):
        if progress is not None:
            progress("stage", k, n_stage)
        batch = loader.read(order[k * shard_size : (k + 1) * shard_size])
        path = stage / _shard_name(k, "zarr")
        _write(_shard(batch, loader.genes, labels), path, "zarr")
        staged.append(str(path))
    if progress is not None:
        progress("annbatch", 0, 1)
    with atomic.atomic(out / COLLECTION) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Consolidated metadata is currently not part")
        warnings.filterwarnings("ignore", category=FutureWarning, module="anndata")
        import zarr

        annbatch.DatasetCollection(zarr.open_group(str(tmp), mode="w")).add_adatas(
            staged,
            shuffle=True,
            rng=np.random.default_rng(plan["options"]["seed"]),
            dataset_size=shard_size,
            # slices mixed into each dataset: annbatch's default 1000, 16 a dataset at least
            shuffle_chunk_size=min(1000, max(1, shard_size // 16)),
        )
    atomic.remove(stage)
    _unchanged(files, _source_files(loader.sources), "while materialize read it")
    datasets = sorted(p.name for p in (out / COLLECTION).iterdir() if p.name.startswith("dataset"))
    index: dict[str, Any] = {
        "scurate_shards": 1,
        **plan,
        "collection": COLLECTION,
        "datasets": datasets,
        "gene_names": [str(g) for g in loader.genes],
        "obs": ["dataset_id", "source_row", "selection_rank", "weight", *labels],
        "sources": loader.sources,
        "source_files": files,
        "n_cells": n_cells,
        "n_shards": len(datasets),
        "shards": [],
        "complete": True,
    }
    _write_json(index, index_path)
    if progress is not None:
        progress("annbatch", 1, 1)
    return Materialized(out=out, index=index, written=len(datasets), skipped=0)


def _write_shards(
    loader: CellLoader,
    plan: dict[str, Any],
    out: Path,
    labels: Sequence[str],
    overwrite: bool,
    progress: Progress | None,
) -> Materialized:
    """Write the shards ``plan`` describes into ``out`` (this process alone writes there)."""
    n_cells, shard_size = loader.n_cells, plan["options"]["shard_size"]
    format = plan["format"]
    done, recorded = _prepare(out, plan, overwrite=overwrite)
    files = _source_files(loader.sources)
    if done:  # the shards there were made from the sources as they were then
        _unchanged(recorded, files, f"since the shards in {out} were made")
    order = loader.positions()
    n_shards = -(-n_cells // shard_size)
    index: dict[str, Any] = {
        "scurate_shards": 1,
        **plan,
        "gene_names": [str(g) for g in loader.genes],
        "obs": ["dataset_id", "source_row", "selection_rank", "weight", *labels],
        "sources": loader.sources,
        "source_files": files,
        "n_cells": n_cells,
        "n_shards": n_shards,
        "shards": [done[k] for k in sorted(done)],
        "complete": False,
    }
    _write_json(index, out / INDEX)
    written = 0
    for k in range(n_shards):
        if progress is not None:
            progress("shards", k, n_shards)
        if k in done:
            continue
        name = _shard_name(k, format)
        batch = loader.read(order[k * shard_size : (k + 1) * shard_size])
        adata = _shard(batch, loader.genes, labels)
        with atomic.atomic(out / name) as tmp:  # replaces a shard the index did not list
            _write(adata, tmp, format)
        done[k] = {
            "shard": k,
            "file": name,
            "n_obs": len(batch),
            "first": k * shard_size,
            "rank_min": int(batch.selection_rank.min()),
            "rank_max": int(batch.selection_rank.max()),
        }
        index["shards"] = [done[i] for i in sorted(done)]
        _write_json(index, out / INDEX)
        written += 1
    _unchanged(files, _source_files(loader.sources), "while materialize read it")
    index["complete"] = True
    _write_json(index, out / INDEX)
    if progress is not None:
        progress("shards", n_shards, n_shards)
    return Materialized(out=out, index=index, written=written, skipped=n_shards - written)

"""The stages every job shares: open the sources, harmonize their obs, embed them (or map them
onto a reference), build the pool's manifest and score every cell.

``select``, ``score`` and ``bench`` all come through :func:`scored_pool`; ``select`` and
``bench`` then choose cells with :func:`scurate._engine.choose.choose`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate import _heap as heap
from scurate._compute.embed import Embedding, from_obsm
from scurate._compute.graph import PoolGraph
from scurate._compute.qc import QcValues
from scurate._compute.reference import Reference, open_reference
from scurate._compute.scoring import PoolScores, score_pool
from scurate._data import harmonization as hz
from scurate._data import manifest as mf
from scurate._data import ontology, spill
from scurate._data.memory import AnnDataSource, Input, open_inputs
from scurate._data.sources import ReadOptions, Source
from scurate._engine.cache import WorkDir, file_identity, make_key, tree_identity
from scurate._engine.options import PoolOptions, ScoreOptions, SelectOptions, check_budget
from scurate._plugins.registry import Plugins, calling
from scurate.errors import OptionError, PluginError

Progress = Callable[[str, int, int], None]
log = logging.getLogger(__name__)


def quiet(stage: str, done: int, total: int) -> None:
    """A progress callback that says nothing."""
    return None


@dataclass
class ScoredPool:
    """The pool after the shared stages: manifest with scores, embedding, and how it ran."""

    sources: list[Source]
    manifest: pl.DataFrame
    embedding: Embedding
    scores: PoolScores
    has_reference: bool  # scored against a reference corpus (scores.novelty is filled)
    plugins: Plugins
    harmonization: dict[str, Any]  # what report.json says of the harmonization
    timings: dict[str, float] = field(default_factory=dict)
    stored: str | None = None  # the work-dir entry it was stored in or read from
    reused: bool = False  # read from the work dir


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Time the block as ``stage``; then give the heap's freed memory back (the next stage's
    peak would stack on it, see :mod:`scurate._heap`)."""
    start = time.perf_counter()
    yield
    heap.trim()
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def _soma_joinids(source: Source) -> pl.Series:
    """The source's ``soma_joinids`` where its reader has them (TileDB-SOMA), else nulls."""
    joinids = getattr(source, "soma_joinids", None)
    if joinids is None:
        return pl.Series("soma_joinid", [None] * source.n_obs, dtype=pl.Int64)
    joinids = np.asarray(joinids, dtype=np.int64)
    if joinids.shape != (source.n_obs,):
        msg = f"{source.path}: the reader gave {len(joinids)} soma_joinids for {source.n_obs} cells"
        raise PluginError(msg)
    return pl.Series("soma_joinid", joinids, dtype=pl.Int64)


def pool_manifest(sources: Sequence[Source]) -> pl.DataFrame:
    """One row per cell of ``sources`` (id, dataset, file, row, soma_joinid where the source
    has one). The dataset and file columns repeat one string per source: ``pl.repeat`` shares
    its bytes (16 bytes a row; a path per row would be 0.7 GB at ten million cells)."""
    frames = [
        pl.DataFrame(
            {
                "cell_id": mf.cell_ids(source.dataset_id, source.obs_names),
                "dataset_id": pl.repeat(source.dataset_id, source.n_obs, eager=True),
                "source": pl.repeat(str(source.path), source.n_obs, eager=True),
                "row": np.arange(source.n_obs, dtype=np.uint32),
                "soma_joinid": _soma_joinids(source),
            }
        )
        for source in sources
    ]
    return mf.conform(pl.concat(frames))


def source_readers(plugins: Plugins) -> dict[str, Any]:
    """Suffix -> opener of every registered source reader, or one line saying none is."""
    readers = {name: item.obj for name, item in plugins.registries["sources"].items()}
    if not readers:
        msg = "no source reader is registered (is scurate installed?)" + "".join(
            f"; {f}" for f in plugins.failures
        )
        raise PluginError(msg)
    return readers


def open_all(sources: Input, plugins: Plugins, read: ReadOptions | None = None) -> list[Source]:
    """Every source (folders searched, AnnData objects taken as they are), opened by its
    registered reader as ``read`` says."""
    return open_inputs(sources, source_readers(plugins), read)


def _embed(
    plugins: Plugins,
    sources: Sequence[Source],
    options: PoolOptions,
    *,
    rng: np.random.Generator,
    progress: Progress,
) -> Embedding:
    if options.obsm_key is not None:
        return from_obsm(sources, options.obsm_key)
    chosen = plugins.get("embedders", options.embedder, option="embedder")
    who = f"embedder '{chosen.name}' (plugin '{chosen.plugin}')"
    with calling(who):
        embedding: Embedding = chosen.obj(sources, rng=rng, progress=progress)
    n = sum(s.n_obs for s in sources)
    values = getattr(embedding, "values", None)
    if not isinstance(values, np.ndarray) or values.ndim != 2 or values.shape[0] != n:
        msg = f"{who} did not return {n} rows"
        raise PluginError(msg)
    values = np.ascontiguousarray(values, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        msg = f"{who} returned NaN or inf in row {int(bad[0])} ({len(bad)} such rows)"
        raise PluginError(msg)
    embedding.values = spill.to_disk(values)  # on disk where large, as the built-in ones
    return embedding


def scored_pool(
    opened: Sequence[Source],
    options: PoolOptions,
    *,
    plugins: Plugins,
    progress: Progress = quiet,
    timings: dict[str, float] | None = None,
    work_dir: WorkDir | None = None,
) -> ScoredPool:
    """Harmonize, embed and score the ``opened`` sources as ``options`` say, or read the pool
    from ``work_dir`` where it was stored for the same inputs and options (and store it there
    when it was not). A budget in the options is checked against the pool before any cell is
    read, so it fails at once."""
    timings = {} if timings is None else timings
    if isinstance(options, SelectOptions):
        check_budget(options.budget, sum(s.n_obs for s in opened))
    if work_dir is not None and any(isinstance(s, AnnDataSource) for s in opened):
        log.info("work_dir not used: AnnData objects in memory have no file to key them by")
        work_dir = None
    if work_dir is None:
        return _compute_pool(opened, options, plugins, progress, timings)
    key = pool_key(opened, options, plugins)
    with timed(timings, "work_dir"):
        stored = work_dir.load(key)
    if stored is not None:
        log.info("scored pool reused from %s", work_dir.entry(key))
        pool = _from_stored(stored, opened, plugins, timings, str(work_dir.entry(key)))
        if stored["meta"].get("harmonization_key") != harmonization_key(options):
            # another metadata map or --set: the obs harmonized again, the scores reused
            harmonized = _harmonize(opened, options, plugins, timings)
            pool.manifest = _with_scores(hz.attach(pool_manifest(opened), harmonized), pool.scores)
            pool.harmonization = hz.report(harmonized)
        return pool
    pool = _compute_pool(opened, options, plugins, progress, timings)
    with timed(timings, "work_dir"):
        entry = work_dir.save(key, **_to_store(pool, harmonization_key(options)))
    if entry is None:
        return pool
    # go on from the stored entry, as a rerun does: its columns come back lean and its large
    # arrays as maps, where the computed pool's buffers held 0.3 GB more through the policy at
    # two million cells (the pool is dropped first, so the two are never held together)
    del pool
    with timed(timings, "work_dir"):
        stored = work_dir.load(key)
    if stored is None:  # unreadable just after it was written (it said why): compute again
        return _compute_pool(opened, options, plugins, progress, timings)
    pool = _from_stored(stored, opened, plugins, timings, str(entry))
    pool.reused = False
    return pool


def _compute_pool(
    opened: Sequence[Source],
    options: PoolOptions,
    plugins: Plugins,
    progress: Progress,
    timings: dict[str, float],
) -> ScoredPool:
    harmonized = _harmonize(opened, options, plugins, timings)
    ref: Reference | None = None
    if isinstance(options, ScoreOptions) and options.reference:
        with timed(timings, "reference"):
            ref = open_reference(
                options.reference,
                readers=source_readers(plugins),
                # the obs filter picks the cells to select from, not the corpus: a reference
                # folder reads as `index build` reads it
                read=replace(options.read, obs_filter=None),
                obsm_key=options.obsm_key,
                seed=options.seed,
                index_factory=options.index_factory,
                progress=progress,
            )
    embed_seed, _ = np.random.SeedSequence(options.seed).spawn(2)
    with timed(timings, "embed"):
        if ref is not None:
            embedding = ref.embed(opened, progress=progress)
        else:
            rng = np.random.default_rng(embed_seed)
            embedding = _embed(plugins, opened, options, rng=rng, progress=progress)
    scores = score_pool(
        opened,
        embedding.values,
        reference=ref,
        near_dup_eps=options.near_dup_eps,
        index_factory=options.index_factory,
        dup_min_genes=options.dup_min_genes,
        doublets=options.qc.scores_doublets,
        project_counts=embedding.project_counts,
        seed=options.seed,
        progress=progress,
        timings=timings,
    )
    # the manifest after the scores: at ten million cells it is a gigabyte the neighbour
    # search need not hold beside its index
    manifest = _with_scores(hz.attach(pool_manifest(opened), harmonized), scores)
    report = hz.report(harmonized)
    heap.trim()  # what building it freed (0.46 GB at two million cells), before it is stored
    return ScoredPool(
        list(opened), manifest, embedding, scores, ref is not None, plugins, report, timings
    )


def _harmonize(
    opened: Sequence[Source], options: PoolOptions, plugins: Plugins, timings: dict[str, float]
) -> list[hz.DatasetResult]:
    """The sources' obs harmonized; with ``primary_only``, one line where no source says which
    cells are primary. Obs only: cheap, and bad metadata stops the run before X is read."""
    with timed(timings, "harmonize"):
        harmonized = hz.harmonize_sources(
            opened,
            metadata_map=options.metadata_map,
            set_fields=options.set_fields,
            plugins=plugins,
        )
    if isinstance(options, SelectOptions) and options.primary_only:
        primary_cells(pl.concat([r.carried for r in harmonized]))
    return harmonized


NO_PRIMARY = (
    "primary_only=True: no source has an obs column 'is_primary_data' (CELLxGENE files do),"
    " so no cell is marked as deposited again"
)


def primary_cells(frame: pl.DataFrame) -> NDArray[np.bool_]:
    """The cells ``primary_only`` lets a policy choose, of a frame with ``is_primary_data``
    (the manifest): true or unknown (null: a source without the column); one line where no
    source has the column."""
    column = frame["is_primary_data"]
    if column.null_count() == frame.height:
        raise OptionError(NO_PRIMARY)
    return column.fill_null(True).to_numpy().astype(bool)


def pool_key(opened: Sequence[Source], options: PoolOptions, plugins: Plugins) -> str:
    """The work-dir key of a scored pool: everything its embedding and scores depend on (see
    :mod:`scurate._engine.cache`). The metadata options are not in it: they shape the
    harmonized columns only (:func:`harmonization_key`)."""
    shaping = {
        k: v
        for k, v in options.to_report().items()
        if k in POOL_FIELDS or (k == "reference" and isinstance(options, ScoreOptions))
    }
    shaping["doublets_scored"] = options.qc.scores_doublets  # the thresholds apply later
    return make_key(
        {
            "scurate": _version(),
            "sources": [_identity(s) for s in opened],
            "options": shaping,
            "reference": tree_identity(getattr(options, "reference", ())),
            "plugins": sorted((i.name, i.version) for i in plugins.info),
            "ontology": ontology.package_version(),
        }
    )


def harmonization_key(options: PoolOptions) -> str:
    """What the stored pool's harmonized columns depend on beyond its key: the metadata map
    (its file's identity) and ``--set``. A pool stored under another is harmonized again."""
    mapping = options.metadata_map
    return make_key(
        {
            "metadata_map": None if mapping is None else file_identity(mapping),
            "set_fields": list(options.set_fields),
        }
    )


POOL_FIELDS = frozenset(
    {"obsm_key", "embedder", "seed", "near_dup_eps", "index_factory", "dup_min_genes"}
    | {"counts_layer", "obs_filter"}
)


def _identity(source: Source) -> list[Any]:
    """A source's file, and which of its rows it reads (a subset of a file is another pool)."""
    rows = getattr(source, "rows", None)
    subset = None if rows is None else hashlib.sha256(np.asarray(rows).tobytes()).hexdigest()
    path = Path(source.path)
    files = tree_identity([path]) if path.is_dir() else [file_identity(path)]
    return [source.dataset_id, source.n_obs, subset, files]


def _version() -> str:
    from scurate import __version__

    return __version__


def _to_store(pool: ScoredPool, harmonized_by: str) -> dict[str, Any]:
    s = pool.scores
    arrays = {
        "exact_dup_of": s.exact_dup_of,
        "near_dup_group": s.near_dup_group,
        "density": s.density,
        "nn_row": s.nn_row,
        "nn_dist": s.nn_dist,
    }
    if s.novelty is not None and s.nearest_reference is not None:
        arrays["novelty"] = s.novelty
        arrays["nearest_reference"] = s.nearest_reference.astype(str)
    if s.graph is not None:
        arrays["graph_rows"], arrays["graph_dist"] = s.graph.rows, s.graph.dist
    if s.qc is not None:
        arrays["qc_n_counts"], arrays["qc_n_genes"] = s.qc.n_counts, s.qc.n_genes
        arrays["qc_mito_fraction"], arrays["qc_doublet_score"] = (
            s.qc.mito_fraction,
            s.qc.doublet_score,
        )
    e = pool.embedding
    meta = {
        "n_cells": pool.manifest.height,
        "sources": sorted({str(Path(s.path).resolve()) for s in pool.sources}),
        "embedding_info": e.info,
        "scores_info": s.info,
        "harmonization": pool.harmonization,
        "has_reference": pool.has_reference,
        "timings_s": pool.timings,
        "harmonization_key": harmonized_by,
    }
    return {"manifest": pool.manifest, "embedding": e.values, "arrays": arrays, "meta": meta}


def _from_stored(
    stored: dict[str, Any],
    opened: Sequence[Source],
    plugins: Plugins,
    timings: dict[str, float],
    entry: str,
) -> ScoredPool:
    a, meta = stored["arrays"], stored["meta"]
    qc = None
    if "qc_n_counts" in a:
        qc = QcValues(
            a["qc_n_counts"],
            a["qc_n_genes"],
            a["qc_mito_fraction"],
            a["qc_doublet_score"],
            meta["scores_info"].get("qc", {}),
        )
    scores = PoolScores(
        a["exact_dup_of"],
        a["near_dup_group"],
        a["density"],
        a.get("novelty"),
        a["nearest_reference"].astype(object) if "nearest_reference" in a else None,
        a["nn_row"],
        a["nn_dist"],
        meta["scores_info"],
        qc,
        PoolGraph(a["graph_rows"], a["graph_dist"]) if "graph_rows" in a else None,
    )
    embedding = Embedding(stored["embedding"], meta["embedding_info"])
    return ScoredPool(
        list(opened),
        stored["manifest"],
        embedding,
        scores,
        bool(meta["has_reference"]),
        plugins,
        meta["harmonization"],
        timings,
        stored=entry,
        reused=True,
    )


def _with_scores(manifest: pl.DataFrame, scores: PoolScores) -> pl.DataFrame:
    """The score columns; a cell that is no copy, or in no group, gets null, not -1."""
    group = scores.near_dup_group
    columns = [
        mf.ids_at(manifest["cell_id"], scores.exact_dup_of, "exact_dup_of"),
        pl.when(pl.Series(group >= 0)).then(pl.Series(group)).alias("near_dup_group"),
        pl.Series("density", scores.density).alias("density"),
    ]
    if scores.qc is not None:
        qc = scores.qc
        columns += [
            pl.Series("n_counts", qc.n_counts, dtype=pl.Float32).fill_nan(None),
            pl.when(pl.Series(qc.n_genes >= 0))
            .then(pl.Series(np.maximum(qc.n_genes, 0), dtype=pl.UInt32))
            .alias("n_genes"),
            pl.Series("mito_fraction", qc.mito_fraction, dtype=pl.Float32).fill_nan(None),
            pl.Series("doublet_score", qc.doublet_score, dtype=pl.Float32).fill_nan(None),
        ]
    if scores.novelty is not None and scores.nearest_reference is not None:
        columns.append(pl.Series("novelty", scores.novelty).alias("novelty"))
        columns.append(
            pl.Series("nearest_reference", scores.nearest_reference.astype(str)).alias(
                "nearest_reference"
            )
        )
    return manifest.with_columns(columns)

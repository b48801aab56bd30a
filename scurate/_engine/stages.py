"""The stages every job shares: open the sources, harmonize their obs, embed them (or map them
onto a reference), build the pool's manifest and score every cell.

``select``, ``score`` and ``bench`` all come through :func:`scored_pool`; ``select`` and
``bench`` then choose cells with :func:`scurate._engine.choose.choose`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from scurate._compute.embed import Embedding, from_obsm
from scurate._compute.reference import Reference, open_reference
from scurate._compute.scoring import PoolScores, score_pool
from scurate._data import harmonization as hz
from scurate._data import manifest as mf
from scurate._data.sources import Source, open_sources
from scurate._engine.options import PoolOptions, ScoreOptions, SelectOptions, check_budget
from scurate._plugins.registry import Plugins
from scurate.errors import PluginError

Progress = Callable[[str, int, int], None]


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
    reference: Reference | None
    plugins: Plugins
    harmonized: Any  # scurate._data.harmonization's per-dataset result, for the report
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def pool_manifest(sources: Sequence[Source], embedding: Embedding | None = None) -> pl.DataFrame:
    """One row per cell of ``sources`` (id, dataset, file, row), with counts where embedded."""
    frames = [
        pl.DataFrame(
            {
                "cell_id": mf.cell_ids(source.dataset_id, source.obs_names),
                "dataset_id": np.full(source.n_obs, source.dataset_id),
                "source": np.full(source.n_obs, str(source.path)),
                "row": np.arange(source.n_obs, dtype=np.uint32),
            }
        )
        for source in sources
    ]
    frame = pl.concat(frames)
    if embedding is not None and embedding.n_counts is not None and embedding.n_genes is not None:
        frame = frame.with_columns(
            pl.Series("n_counts", embedding.n_counts, dtype=pl.Float32),
            pl.Series("n_genes", embedding.n_genes.astype(np.uint32), dtype=pl.UInt32),
        )
    return mf.conform(frame)


def source_readers(plugins: Plugins) -> dict[str, Any]:
    """Suffix -> opener of every registered source reader, or one line saying none is."""
    readers = {name: item.obj for name, item in plugins.registries["sources"].items()}
    if not readers:
        msg = "no source reader is registered (is scurate installed?)" + "".join(
            f"; {f}" for f in plugins.failures
        )
        raise PluginError(msg)
    return readers


def open_all(sources: Sequence[str | os.PathLike[str]], plugins: Plugins) -> list[Source]:
    """Every source file (folders searched), opened by its registered reader."""
    return open_sources(sources, source_readers(plugins))


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
    embedding: Embedding = chosen.obj(sources, rng=rng, progress=progress)
    n = sum(s.n_obs for s in sources)
    values = getattr(embedding, "values", None)
    if not isinstance(values, np.ndarray) or values.ndim != 2 or values.shape[0] != n:
        msg = f"embedder '{chosen.name}' (plugin '{chosen.plugin}') did not return {n} rows"
        raise PluginError(msg)
    embedding.values = np.ascontiguousarray(values, dtype=np.float32)
    return embedding


def scored_pool(
    opened: Sequence[Source],
    options: PoolOptions,
    *,
    plugins: Plugins,
    progress: Progress = quiet,
    timings: dict[str, float] | None = None,
) -> ScoredPool:
    """Harmonize, embed and score the ``opened`` sources as ``options`` say. A budget in the
    options is checked against the pool before any cell is read, so it fails at once."""
    timings = {} if timings is None else timings
    if isinstance(options, SelectOptions):
        check_budget(options.budget, sum(s.n_obs for s in opened))
    with timed(timings, "harmonize"):  # obs only: cheap, and bad metadata stops the run early
        harmonized = hz.harmonize_sources(
            opened,
            metadata_map=options.metadata_map,
            set_fields=options.set_fields,
            plugins=plugins,
        )
    ref: Reference | None = None
    if isinstance(options, ScoreOptions) and options.reference:
        with timed(timings, "reference"):
            ref = open_reference(
                options.reference,
                readers=source_readers(plugins),
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
    manifest = hz.attach(pool_manifest(opened, embedding), harmonized)
    scores = score_pool(
        opened,
        embedding.values,
        reference=ref,
        near_dup_eps=options.near_dup_eps,
        index_factory=options.index_factory,
        dup_min_genes=options.dup_min_genes,
        progress=progress,
        timings=timings,
    )
    manifest = _with_scores(manifest, scores)
    return ScoredPool(list(opened), manifest, embedding, scores, ref, plugins, harmonized, timings)


def _with_scores(manifest: pl.DataFrame, scores: PoolScores) -> pl.DataFrame:
    """The score columns; a cell that is no copy, or in no group, gets null, not -1."""
    ids = manifest["cell_id"].to_numpy()
    dup = scores.exact_dup_of
    group = scores.near_dup_group
    columns = [
        pl.when(pl.Series(dup >= 0)).then(pl.Series(ids[np.maximum(dup, 0)])).alias("exact_dup_of"),
        pl.when(pl.Series(group >= 0)).then(pl.Series(group)).alias("near_dup_group"),
        pl.Series("density", scores.density).alias("density"),
    ]
    if scores.novelty is not None and scores.nearest_reference is not None:
        columns.append(pl.Series("novelty", scores.novelty).alias("novelty"))
        columns.append(
            pl.Series("nearest_reference", scores.nearest_reference.astype(str)).alias(
                "nearest_reference"
            )
        )
    return manifest.with_columns(columns)

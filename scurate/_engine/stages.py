"""The stages every command shares: open the sources, embed them (or map them onto a
reference), build the pool's manifest and score every cell."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._compute.dedup import MIN_GENES
from scurate._compute.embed import Embedding, from_obsm
from scurate._compute.reference import Reference, open_reference
from scurate._compute.scoring import PoolScores, keep_mask, score_pool
from scurate._data import harmonization as hz
from scurate._data import manifest as mf
from scurate._data.sources import Source, open_sources
from scurate._engine.choose import SelectionContext, check_budget, run_policy
from scurate._engine.strata import Quota, obs_lookup, parse_quota, run_stratified
from scurate._plugins.registry import Plugins, Registered, discover
from scurate.errors import OptionError, PluginError

Progress = Callable[[str, int, int], None]


@dataclass
class ScoredPool:
    """The pool after the shared stages: manifest with scores, embedding, and how it ran."""

    sources: list[Source]
    manifest: pl.DataFrame
    embedding: Embedding
    scores: PoolScores
    reference: Reference | None
    policy: Registered | None
    harmonized: Any  # scurate._data.harmonization's per-dataset result, for the report
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def pool_manifest(sources: Sequence[Source], embedding: Embedding | None = None) -> pl.DataFrame:
    """One row per cell of ``sources`` (id, dataset, file, row), with counts where embedded."""
    frames = []
    for source in sources:
        names = source.obs_names.astype(str)
        frames.append(
            pl.DataFrame(
                {
                    "cell_id": np.char.add(f"{source.dataset_id}/", names),
                    "dataset_id": np.full(source.n_obs, source.dataset_id),
                    "source": np.full(source.n_obs, str(source.path)),
                    "row": np.arange(source.n_obs, dtype=np.uint32),
                }
            )
        )
    frame = pl.concat(frames)
    if embedding is not None and embedding.n_counts is not None and embedding.n_genes is not None:
        frame = frame.with_columns(
            pl.Series("n_counts", embedding.n_counts, dtype=pl.Float32),
            pl.Series("n_genes", embedding.n_genes.astype(np.uint32), dtype=pl.UInt32),
        )
    return mf.conform(frame)


def _embed(
    plugins: Plugins,
    sources: Sequence[Source],
    *,
    obsm_key: str | None,
    embedder: str,
    rng: np.random.Generator,
    progress: Progress,
) -> Embedding:
    if obsm_key is not None:
        return from_obsm(sources, obsm_key)
    chosen = plugins.get("embedders", embedder, option="--embedder")
    embedding: Embedding = chosen.obj(sources, rng=rng, progress=progress)
    n = sum(s.n_obs for s in sources)
    values = getattr(embedding, "values", None)
    if not isinstance(values, np.ndarray) or values.ndim != 2 or values.shape[0] != n:
        msg = f"embedder '{chosen.name}' (plugin '{chosen.plugin}') did not return {n} rows"
        raise PluginError(msg)
    embedding.values = np.ascontiguousarray(values, dtype=np.float32)
    return embedding


def source_readers(plugins: Plugins) -> dict[str, Any]:
    """Suffix -> opener of every registered source reader, or one line saying none is."""
    readers = {name: item.obj for name, item in plugins.registries["sources"].items()}
    if not readers:
        msg = "no source reader is registered (is scurate installed?)" + "".join(
            f"; {f}" for f in plugins.failures
        )
        raise PluginError(msg)
    return readers


def scored_pool(
    sources: Sequence[str | os.PathLike[str]],
    *,
    obsm_key: str | None,
    embedder: str,
    seed: int,
    embed_seed: np.random.SeedSequence,
    reference: Sequence[str | os.PathLike[str]] | None,
    near_dup_eps: float | None,
    index_factory: str | None,
    dup_min_genes: int = MIN_GENES,
    progress: Progress,
    budget: int | None = None,
    policy: str | None = None,
    metadata_map: str | os.PathLike[str] | None = None,
    set_fields: Sequence[str] = (),
    opened: Sequence[Source] | None = None,
) -> ScoredPool:
    """Open, embed and score ``sources`` (or the already ``opened`` ones); with ``budget`` and
    ``policy``, check both before any cell is read, so a bad option fails at once."""
    timings: dict[str, float] = {}
    with timed(timings, "open"):
        plugins = discover()
        readers = source_readers(plugins)
        opened = list(opened) if opened is not None else open_sources(sources, readers)
        chosen = None
        if budget is not None:
            check_budget(budget, sum(s.n_obs for s in opened))
        if policy is not None:
            chosen = plugins.get("policies", policy, option="--policy")
    with timed(timings, "harmonize"):  # obs only: cheap, and bad metadata stops the run early
        harmonized = hz.harmonize_sources(
            opened, metadata_map=metadata_map, set_fields=set_fields, plugins=plugins
        )
    ref: Reference | None = None
    if reference:
        with timed(timings, "reference"):
            ref = open_reference(
                reference,
                readers=readers,
                obsm_key=obsm_key,
                seed=seed,
                index_factory=index_factory,
                progress=progress,
            )
    with timed(timings, "embed"):
        if ref is not None:
            embedding = ref.embed(opened, progress=progress)
        else:
            embedding = _embed(
                plugins,
                opened,
                obsm_key=obsm_key,
                embedder=embedder,
                rng=np.random.default_rng(embed_seed),
                progress=progress,
            )
    manifest = hz.attach(pool_manifest(opened, embedding), harmonized)
    scores = score_pool(
        opened,
        embedding.values,
        reference=ref,
        near_dup_eps=near_dup_eps,
        index_factory=index_factory,
        dup_min_genes=dup_min_genes,
        progress=progress,
        timings=timings,
    )
    manifest = _with_scores(manifest, scores)
    return ScoredPool(opened, manifest, embedding, scores, ref, chosen, harmonized, timings)


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


@dataclass
class Chosen:
    """A policy's pick from a scored pool: ``order`` (pool rows, priority first), the context
    the policy saw, and which cells it could choose from (``keep``, ``candidates``)."""

    order: NDArray[np.int64]
    ctx: SelectionContext
    keep: NDArray[np.bool_]
    candidates: NDArray[np.int64]


def choose(
    pool: ScoredPool,
    policy: Registered,
    budget: int,
    *,
    rng: np.random.Generator,
    params: dict[str, str],
    keep_duplicates: bool = False,
    strata: Sequence[str] | None = None,
    quota: Quota | None = None,
) -> Chosen:
    """Run ``policy`` for ``budget`` cells on a scored pool, as ``select`` does: exact copies and
    near-duplicate groups set aside first (unless ``keep_duplicates``), quotas per stratum
    where ``strata`` are given."""
    scores, manifest, n = pool.scores, pool.manifest, pool.manifest.height
    keep = (
        np.ones(n, dtype=bool)
        if keep_duplicates
        else keep_mask(scores.exact_dup_of, scores.near_dup_group)
    )
    candidates = np.flatnonzero(keep)
    if budget > len(candidates):
        msg = (
            f"--budget {budget} is more than the {len(candidates)} cells left after setting "
            f"aside {n - len(candidates)} duplicates (--keep-duplicates keeps them)"
        )
        raise OptionError(msg)
    ctx = SelectionContext(
        np.ascontiguousarray(pool.embedding.values[candidates]),
        manifest[candidates] if len(candidates) < n else manifest,
        rng,
        params=dict(params),
        covered=None if scores.novelty is None else scores.novelty[candidates],
    )
    if strata is None:
        within = run_policy(policy, ctx, budget)
    else:
        within = run_stratified(
            policy,
            ctx,
            budget,
            columns=strata,
            quota=quota or parse_quota("proportional"),
            lookup=obs_lookup(pool.sources),
        )
    return Chosen(candidates[within], ctx, keep, candidates)

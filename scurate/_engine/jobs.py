"""The Python API: ``select`` returns a Selection; ``select_to_dir`` also writes it out."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._compute.dedup import MIN_GENES
from scurate._compute.kernels import covering_radius
from scurate._compute.scoring import dataset_overlap, keep_mask
from scurate._compute.weights import assign
from scurate._data import harmonization as hz
from scurate._data import manifest as mf
from scurate._engine import coverage as cov
from scurate._engine import report as rp
from scurate._engine import stages
from scurate._engine.choose import parse_params
from scurate._engine.strata import parse_columns, parse_quota
from scurate.errors import InputError, OptionError

Progress = Callable[[str, int, int], None]


def _quiet(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class Selection:
    """A run's result: the manifest of the pool (selected cells ranked) and its report."""

    manifest: pl.DataFrame
    report: dict[str, Any]

    @property
    def selected(self) -> pl.DataFrame:
        """The selected cells in priority order."""
        return self.manifest.filter(pl.col("selected")).sort("selection_rank")

    def to_dict(self) -> dict[str, Any]:
        return self.report


def select(
    sources: Sequence[str | os.PathLike[str]],
    budget: int,
    *,
    policy: str = "kcenter",
    obsm_key: str | None = None,
    embedder: str = "pca",
    seed: int = 0,
    params: Mapping[str, str] | Sequence[str] | None = None,
    progress: Progress | None = None,
    reference: Sequence[str | os.PathLike[str]] | None = None,
    keep_duplicates: bool = False,
    near_dup_eps: float | None = None,
    index_factory: str | None = None,
    dup_min_genes: int = MIN_GENES,
    metadata_map: str | os.PathLike[str] | None = None,
    set_fields: Sequence[str] = (),
    strata: str | Sequence[str] | None = None,
    quota: str = "proportional",
) -> Selection:
    """Select ``budget`` cells that cover the sources, in priority order.

    Parameters
    ----------
    sources
        .h5ad files, or folders searched for them.
    budget
        Cells to select; at most the number of cells in the sources.
    policy
        A registered selection policy (``scurate plugins`` lists them).
    obsm_key
        Use this stored embedding (``X_pca``, ``X_scVI``...) instead of computing one.
    embedder
        The embedder used when ``obsm_key`` is not given.
    seed
        Seeds every random choice: the same seed and inputs give the same manifest.
    params
        Policy parameters, as a mapping or as ``"key=value"`` strings.
    progress
        Called as ``progress(stage, done, total)`` while the run goes.
    reference
        A corpus the team already has: one folder written by ``scurate index build``, or h5ad
        files and folders. Cells are embedded with the reference's model, ``novelty`` is each
        cell's distance to its nearest reference cell, and ``kcenter`` starts with the
        reference already covered.
    keep_duplicates
        Let the policy choose exact copies and every member of a near-duplicate group (by
        default it sees the kept copy and one cell per group).
    near_dup_eps
        Distance under which cells are near duplicates (default: from the data, see
        :mod:`scurate._compute.scoring`).
    index_factory
        FAISS index-factory string for the neighbour search (default: exact ``Flat`` while
        affordable, else IVF).
    dup_min_genes
        Fewest nonzero genes for a cell to be called an exact duplicate.
    metadata_map
        A TOML mapping file for the harmonizers (see ``scurate.harmonize``).
    set_fields
        ``"field=value"`` metadata constants for every dataset (``"tissue=pancreas"``).
    strata
        Manifest columns (``"tissue,cell_type"`` or a list) whose value combinations divide the
        budget; the policy runs inside each stratum (see :mod:`scurate._engine.strata`).
    quota
        With ``strata``: ``proportional`` to stratum size, ``equal`` (water-filling) or
        ``min:N`` (at least ``N`` cells per stratum, the rest proportional).

    Returns
    -------
    The pool's manifest, with scores, ``selected``, ``selection_rank`` and ``policy`` filled,
    and the report (counts per dataset, duplicates and overlap, covering radius, parameters,
    versions, timings).
    """
    progress = progress or _quiet
    given = dict(params) if isinstance(params, Mapping) else parse_params(params or [])
    columns = None if strata is None else parse_columns(strata)
    quota_ = parse_quota(quota)
    if columns is None and quota_.kind != "proportional":
        msg = f"--quota {quota}: needs --strata (the columns whose values get quotas)"
        raise OptionError(msg)
    embed_seed, policy_seed = np.random.SeedSequence(seed).spawn(2)
    pool_data = stages.scored_pool(
        sources,
        obsm_key=obsm_key,
        embedder=embedder,
        seed=seed,
        embed_seed=embed_seed,
        reference=reference,
        near_dup_eps=near_dup_eps,
        index_factory=index_factory,
        dup_min_genes=dup_min_genes,
        progress=progress,
        budget=budget,
        policy=policy,
        metadata_map=metadata_map,
        set_fields=set_fields,
    )
    manifest, embedding, ref = pool_data.manifest, pool_data.embedding, pool_data.reference
    timings, chosen, pool = pool_data.timings, pool_data.policy, manifest.height
    assert chosen is not None  # asked for by name above
    with stages.timed(timings, "select"):
        progress("select", 0, budget)
        picked = stages.choose(
            pool_data,
            chosen,
            budget,
            rng=np.random.default_rng(policy_seed),
            params=given,
            keep_duplicates=keep_duplicates,
            strata=columns,
            quota=quota_,
        )
        progress("select", budget, budget)
    order, ctx, keep, candidates = picked.order, picked.ctx, picked.keep, picked.candidates
    radii = ctx.info.get("covering_radius")
    if not isinstance(radii, list) or len(radii) != budget:
        radii = None
    with stages.timed(timings, "coverage"):
        whole_pool = len(candidates) == pool and ref is None
        radius = radii[-1] if radii and whole_pool else covering_radius(embedding.values, order)
        # every pool cell (duplicates set aside included) to its nearest selected cell
        nearest = assign(embedding.values, order)  # FAISS; exact where affordable
        mean_distance = float(nearest.distance.mean(dtype=np.float64)) if nearest.exact else None
        weight = np.full(pool, np.nan, dtype=np.float32)
        weight[order] = nearest.weights(budget)
    rank = np.full(pool, -1, dtype=np.int64)
    rank[order] = np.arange(budget)
    manifest = manifest.with_columns(
        pl.Series("selected", rank >= 0),
        pl.Series("selection_rank", rank).cast(pl.UInt32, strict=False).alias("selection_rank"),
        pl.Series("weight", weight).fill_nan(None),
    ).with_columns(
        pl.when(pl.col("selected")).then(pl.lit(chosen.name)).otherwise(None).alias("policy"),
        pl.when(pl.col("selected")).then(pl.col("selection_rank")).alias("selection_rank"),
    )
    parameters = {
        "sources": [str(s) for s in sources],
        "budget": budget,
        "policy": chosen.name,
        "policy_plugin": chosen.plugin,
        "params": given,
        "obsm_key": obsm_key,
        "embedder": None if obsm_key or ref else embedder,
        "seed": seed,
        "reference": [str(r) for r in reference] if reference else None,
        "keep_duplicates": keep_duplicates,
        "near_dup_eps": near_dup_eps,
        "index_factory": index_factory,
        "dup_min_genes": dup_min_genes,
        "metadata_map": None if metadata_map is None else str(metadata_map),
        "set": list(set_fields),
        "strata": columns,
        "quota": None if columns is None else str(quota_),
    }
    report = rp.build_report(
        manifest=manifest,
        parameters=parameters,
        embedding=embedding.info,
        covering_radius=radius,
        mean_distance=mean_distance,
        radii=radii,
        policy_info={k: v for k, v in ctx.info.items() if k != "strata"},
        timings=timings,
    )
    report["covering_radius_curve_over"] = (
        "the pool"
        if whole_pool
        else "the cells the policy chose from" + (" and the reference" if ref else "")
    )
    report["weights"] = nearest.summary(budget)
    report["strata"] = ctx.info.get("strata")
    report["harmonization"] = hz.report(pool_data.harmonized)
    report["coverage"] = cov.coverage(manifest)
    report.update(_score_report(pool_data, keep))
    report["duplicates"]["kept_in_pool"] = keep_duplicates
    for row in report["datasets"]:
        row["duplicates_set_aside"] = report["duplicates"]["set_aside_per_dataset"].get(
            row["dataset_id"], 0
        )
    return Selection(mf.conform(manifest), report)


def _score_report(pool_data: stages.ScoredPool, keep: NDArray[np.bool_]) -> dict[str, Any]:
    """What the report says of the scores: rules, counts, overlap, duplicates set aside."""
    scores, manifest = pool_data.scores, pool_data.manifest
    aside = dict(
        manifest.with_columns(pl.Series("kept", keep))
        .group_by("dataset_id")
        .agg((~pl.col("kept")).sum())
        .iter_rows()
    )
    return {
        "scores": scores.info,
        "duplicates": {
            "exact_copies": int((scores.exact_dup_of >= 0).sum()),
            "in_near_dup_groups": int((scores.near_dup_group >= 0).sum()),
            "set_aside": int((~keep).sum()),
            "set_aside_per_dataset": {k: int(v) for k, v in aside.items()},
        },
        "overlap": dataset_overlap(
            manifest["dataset_id"].to_numpy(), scores.exact_dup_of, scores.near_dup_group
        ),
    }


@dataclass
class Scores:
    """``score``'s result: the pool's manifest with scores, the nearest-neighbour table, and the
    report (rules, distance distribution, duplicates, overlap between datasets)."""

    manifest: pl.DataFrame
    neighbours: pl.DataFrame
    report: dict[str, Any]


def score(
    sources: Sequence[str | os.PathLike[str]],
    *,
    obsm_key: str | None = None,
    embedder: str = "pca",
    seed: int = 0,
    reference: Sequence[str | os.PathLike[str]] | None = None,
    near_dup_eps: float | None = None,
    index_factory: str | None = None,
    dup_min_genes: int = MIN_GENES,
    progress: Progress | None = None,
    metadata_map: str | os.PathLike[str] | None = None,
    set_fields: Sequence[str] = (),
) -> Scores:
    """Score every cell without selecting: the analysis mode behind ``scurate score``.

    The parameters are those of :func:`select`. ``neighbours`` has each cell's nearest other
    cell and its distance, the distribution a near-duplicate threshold is chosen from.
    """
    embed_seed, _ = np.random.SeedSequence(seed).spawn(2)
    pool_data = stages.scored_pool(
        sources,
        obsm_key=obsm_key,
        embedder=embedder,
        seed=seed,
        embed_seed=embed_seed,
        reference=reference,
        near_dup_eps=near_dup_eps,
        index_factory=index_factory,
        dup_min_genes=dup_min_genes,
        progress=progress or _quiet,
        metadata_map=metadata_map,
        set_fields=set_fields,
    )
    manifest, scores = pool_data.manifest, pool_data.scores
    ids = manifest["cell_id"].to_numpy()
    has = scores.nn_row >= 0
    neighbours = pl.DataFrame(
        {
            "cell_id": ids,
            "dataset_id": manifest["dataset_id"],
            "nn_distance": scores.nn_dist,
        }
    ).with_columns(
        pl.when(pl.Series(has))
        .then(pl.Series(ids[np.maximum(scores.nn_row, 0)]))
        .alias("nn_cell_id")
    )
    keep = keep_mask(scores.exact_dup_of, scores.near_dup_group)
    report = {
        "report_version": rp.REPORT_VERSION,
        "parameters": {
            "sources": [str(s) for s in sources],
            "obsm_key": obsm_key,
            "embedder": None if obsm_key or reference else embedder,
            "seed": seed,
            "reference": [str(r) for r in reference] if reference else None,
            "near_dup_eps": near_dup_eps,
            "index_factory": index_factory,
            "dup_min_genes": dup_min_genes,
        },
        "n_pool": manifest.height,
        "datasets": rp.per_dataset(manifest),
        **_score_report(pool_data, keep),
        "harmonization": hz.report(pool_data.harmonized),
        "embedding": pool_data.embedding.info,
        "timings_s": {k: round(v, 4) for k, v in pool_data.timings.items()},
        "versions": rp.versions(),
    }
    return Scores(mf.conform(manifest), neighbours, report)


def score_to_dir(
    sources: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    **options: Any,
) -> Scores:
    """``score``, then write ``manifest.parquet``, ``neighbours.parquet`` and ``report.json``
    into ``out`` (each under a temporary name, then renamed)."""
    out_dir = _out_dir(out)
    scored = score(sources, **options)
    out_dir.mkdir(parents=True, exist_ok=True)
    scored.report["outputs"] = {
        "manifest": str(out_dir / "manifest.parquet"),
        "neighbours": str(out_dir / "neighbours.parquet"),
        "report": str(out_dir / "report.json"),
    }
    mf.write_manifest(scored.manifest, out_dir / "manifest.parquet")
    tmp = out_dir / ".neighbours.parquet.partial"
    scored.neighbours.write_parquet(tmp)
    tmp.replace(out_dir / "neighbours.parquet")
    rp.write_json(scored.report, out_dir / "report.json")
    return scored


def build_index(
    corpus: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    obsm_key: str | None = None,
    seed: int = 0,
    index_factory: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Embed and index a corpus once, for ``select --reference``; returns its description."""
    from scurate._compute.reference import build_reference, save_reference
    from scurate._plugins.registry import discover

    ref = build_reference(
        corpus,
        readers=stages.source_readers(discover()),
        obsm_key=obsm_key,
        seed=seed,
        index_factory=index_factory,
        progress=progress,
    )
    path = save_reference(ref, out)
    return {**ref.info, "path": str(path)}


def _out_dir(out: str | os.PathLike[str]) -> Path:
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        msg = f"-o {out_dir}: exists and is not a folder"
        raise InputError(msg)
    return out_dir


def select_to_dir(
    sources: Sequence[str | os.PathLike[str]],
    budget: int,
    *,
    out: str | os.PathLike[str],
    **options: Any,
) -> Selection:
    """``select``, then write ``manifest.parquet`` and ``report.json`` into ``out``.

    Each file is written under a temporary name and renamed, so an interrupted run never
    leaves a manifest that looks complete.
    """
    out_dir = _out_dir(out)
    selection = select(sources, budget, **options)
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    selection.report["outputs"] = {
        "manifest": str(out_dir / "manifest.parquet"),
        "report": str(out_dir / "report.json"),
    }
    mf.write_manifest(selection.manifest, out_dir / "manifest.parquet")
    selection.report["timings_s"]["write"] = round(time.perf_counter() - start, 4)
    rp.write_json(selection.report, out_dir / "report.json")
    return selection

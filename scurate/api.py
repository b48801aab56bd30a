"""The Python API: ``select`` returns a Selection; ``select_to_dir`` also writes it out."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from scurate import manifest as mf
from scurate import report as rp
from scurate.embed import Embedding, from_obsm
from scurate.errors import InputError, OptionError, PluginError
from scurate.io import Source, open_sources
from scurate.kcenter import covering_radius
from scurate.plugins import Plugins, discover
from scurate.select import SelectionContext, check_budget, parse_params, run_policy
from scurate.strata import obs_lookup, parse_columns, parse_quota, run_stratified
from scurate.weights import assign

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


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def _pool_manifest(sources: Sequence[Source], embedding: Embedding) -> pl.DataFrame:
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
    if embedding.n_counts is not None and embedding.n_genes is not None:
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


def select(
    sources: Sequence[str | os.PathLike[str]],
    budget: int,
    *,
    policy: str = "kcenter",
    obsm_key: str | None = None,
    embedder: str = "pca",
    seed: int = 0,
    params: Mapping[str, str] | Sequence[str] | None = None,
    strata: str | Sequence[str] | None = None,
    quota: str = "proportional",
    progress: Progress | None = None,
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
    strata
        Manifest columns (``"tissue,cell_type"`` or a list) whose value combinations divide the
        budget; the policy runs inside each stratum (see :mod:`scurate.strata`).
    quota
        With ``strata``: ``proportional`` to stratum size, ``equal`` (water-filling) or
        ``min:N`` (at least ``N`` cells per stratum, the rest proportional).
    progress
        Called as ``progress(stage, done, total)`` while the run goes.

    Returns
    -------
    The pool's manifest, with ``selected``, ``selection_rank`` and ``policy`` filled, and the
    report (counts per dataset, covering radius, parameters, versions, timings).
    """
    progress = progress or _quiet
    timings: dict[str, float] = {}
    given = dict(params) if isinstance(params, Mapping) else parse_params(params or [])
    columns = None if strata is None else parse_columns(strata)
    quota_ = parse_quota(quota)
    if columns is None and quota_.kind != "proportional":
        msg = f"--quota {quota}: needs --strata (the columns whose values get quotas)"
        raise OptionError(msg)
    with _timed(timings, "open"):
        plugins = discover()
        readers = {name: item.obj for name, item in plugins.registries["sources"].items()}
        if not readers:
            msg = "no source reader is registered (is scurate installed?)" + "".join(
                f"; {f}" for f in plugins.failures
            )
            raise PluginError(msg)
        opened = open_sources(sources, readers)
        pool = sum(s.n_obs for s in opened)
        check_budget(budget, pool)
        chosen = plugins.get("policies", policy, option="--policy")
    embed_seed, policy_seed = np.random.SeedSequence(seed).spawn(2)
    with _timed(timings, "embed"):
        embedding = _embed(
            plugins,
            opened,
            obsm_key=obsm_key,
            embedder=embedder,
            rng=np.random.default_rng(embed_seed),
            progress=progress,
        )
    manifest = _pool_manifest(opened, embedding)
    ctx = SelectionContext(
        embedding.values, manifest, np.random.default_rng(policy_seed), params=given
    )
    with _timed(timings, "select"):
        progress("select", 0, budget)
        if columns is None:
            order = run_policy(chosen, ctx, budget)
        else:
            order = run_stratified(
                chosen, ctx, budget, columns=columns, quota=quota_, lookup=obs_lookup(opened)
            )
        progress("select", budget, budget)
    radii = ctx.info.get("covering_radius")
    if not isinstance(radii, list) or len(radii) != budget:
        radii = None
    with _timed(timings, "coverage"):
        radius = radii[-1] if radii else covering_radius(embedding.values, order)
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
        "embedder": None if obsm_key else embedder,
        "seed": seed,
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
    report["weights"] = nearest.summary(budget)
    report["strata"] = ctx.info.get("strata")
    return Selection(mf.conform(manifest), report)


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
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        msg = f"-o {out_dir}: exists and is not a folder"
        raise InputError(msg)
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

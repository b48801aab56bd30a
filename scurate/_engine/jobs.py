"""The jobs behind the Python API and the CLI: ``select``, ``score`` and ``index build``, each
run from its options object, and written into one output folder by the ``*_to_dir`` forms."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._backend import Backend, connect, using
from scurate._compute.reference import build_reference, index_folder, save_reference
from scurate._compute.scoring import keep_mask
from scurate._compute.weights import Assignment, assign
from scurate._data import manifest as mf
from scurate._data.memory import Input
from scurate._data.sources import Source, fingerprint
from scurate._engine import coverage as cov
from scurate._engine import in_memory
from scurate._engine import report as rp
from scurate._engine.cache import WorkDir
from scurate._engine.choose import Chosen, choose, qc_failures
from scurate._engine.context import check_params_read
from scurate._engine.options import IndexOptions, ScoreOptions, SelectOptions
from scurate._engine.outputs import commit, prepare
from scurate._engine.pages import write_report
from scurate._engine.progress import LogProgress
from scurate._engine.stages import ScoredPool, open_all, quiet, scored_pool, source_readers, timed
from scurate._engine.threads import limited
from scurate._plugins.registry import discover
from scurate._report import adds_table
from scurate._report.page import PAGE
from scurate.errors import InputError

Progress = Callable[[str, int, int], None]
Paths = Sequence[str | os.PathLike[str]]


@dataclass
class Selection:
    """A run's result: the manifest of the pool (selected cells ranked) and its report."""

    manifest: pl.DataFrame
    report: dict[str, Any]
    sources: list[Source] = field(default_factory=list, repr=False)  # as the run opened them
    embedding: NDArray[np.float32] | None = field(default=None, repr=False)  # one row a cell

    @property
    def selected(self) -> pl.DataFrame:
        """The selected cells in priority order."""
        return self.manifest.filter(pl.col("selected")).sort("selection_rank")

    def to_anndata(self) -> Any:
        """The selected cells in priority order as one AnnData: counts (raw where the sources
        had them) on the genes every source shares, the manifest's columns as obs (obs names
        are cell ids), the embedding in ``obsm['X_scurate']``."""
        if not self.sources:
            msg = "to_anndata: this selection was read back without its sources"
            raise InputError(msg)
        return in_memory.to_anndata(self.manifest, self.sources, self.embedding)

    def annotate(self, adata: Any) -> Any:
        """Write ``selected``, ``selection_rank``, ``weight`` and the scores into
        ``adata.obs`` (see :func:`scurate.annotate`); returns ``adata``."""
        return in_memory.annotate(adata, self.manifest, self.sources)

    def to_dict(self) -> dict[str, Any]:
        return self.report


@dataclass
class Scores:
    """``score``'s result: the pool's manifest with scores, the nearest-neighbour table, and the
    report (rules, distance distribution, duplicates, overlap between datasets)."""

    manifest: pl.DataFrame
    neighbours: pl.DataFrame
    report: dict[str, Any]


def backend_of(opts: ScoreOptions, threads: int) -> Backend:
    """The backend the options name, connected (a local Ray gets the job's ``threads``)."""
    return connect(opts.backend, opts.ray_address, cpus=threads)


def _open_pool(
    sources: Input, options: ScoreOptions, progress: Progress, *, policy: str | None = None
) -> ScoredPool:
    """Discover plugins, check the policy's name (before any cell is read), open and score."""
    timings: dict[str, float] = {}
    with timed(timings, "open"):
        plugins = discover()
        if policy is not None:
            plugins.get("policies", policy, option="policy")
        opened = open_all(sources, plugins, options.read)
    work_dir = None if options.work_dir is None else WorkDir(options.work_dir)
    return scored_pool(
        opened, options, plugins=plugins, progress=progress, timings=timings, work_dir=work_dir
    )


def select(
    sources: Input, budget: int, *, progress: Progress | None = None, **options: Any
) -> Selection:
    """Select ``budget`` cells that cover the sources, in priority order.

    Parameters
    ----------
    sources
        .h5ad files, AnnData zarr stores, TileDB-SOMA experiments or folders searched for
        them; AnnData objects in memory; a list mixing both; or a mapping of dataset names
        to AnnData objects.
    budget
        Cells to select; at most the number of cells in the sources.
    progress
        Called as ``progress(stage, done, total)`` while the run goes.
    **options
        The fields of :class:`scurate.SelectOptions` (``policy``, ``obsm_key``, ``seed``,
        ``params``, ``reference``, ``strata``, ``quota``, ``keep_duplicates``, ``backend``...).

    Returns
    -------
    The pool's manifest, with scores, ``selected``, ``selection_rank``, ``weight`` and
    ``policy`` filled, and the report (counts per dataset, duplicates and overlap, covering
    radius, coverage per stratum, parameters, versions, timings).
    """
    opts = SelectOptions.of("select", budget=budget, **options)
    return select_with(sources, opts, progress=progress or LogProgress())


def select_with(sources: Input, opts: SelectOptions, *, progress: Progress = quiet) -> Selection:
    """:func:`select` from an options object already checked."""
    with limited(opts.threads) as threads, using(backend_of(opts, threads)):
        return _select(sources, opts, progress, threads)


def _select(sources: Input, opts: SelectOptions, progress: Progress, threads: int) -> Selection:
    pool = _open_pool(sources, opts, progress, policy=opts.policy)
    timings, budget = pool.timings, opts.budget
    with timed(timings, "select"):
        progress("select", 0, budget)
        picked = choose(pool, opts)
        check_params_read(picked.policy, picked.params)
        progress("select", budget, budget)
    with timed(timings, "coverage"):
        radii, radius, nearest = _coverage(pool, picked)
    manifest = _with_selection(
        pool.manifest, picked, nearest.weights(budget), stratified=opts.strata is not None
    )
    report = rp.job_report(
        sources,
        opts,
        timings,
        parameters={"policy_plugin": picked.policy.plugin, "threads_used": threads},
        n_selected=int(manifest["selected"].sum()),
        **rp.pool_sections(pool, picked.keep, manifest, picked.primary, picked.failed_qc),
        qc=rp.qc_section(manifest, opts.qc.as_given(), picked.qc_failed or {}, picked.primary),
        reasons=dict(manifest.group_by("reason").len().sort("reason").iter_rows()),
        covering_radius=None if radius is None else round(radius, 6),
        covering_radius_curve=rp.radius_curve(radii or []),
        covering_radius_curve_over=(
            "the pool"
            if len(picked.candidates) == manifest.height and not pool.has_reference
            else "the cells the policy chose from"
            + (" and the reference" if pool.has_reference else "")
        ),
        # mean distance of a pool cell to its nearest selected cell; null where the search
        # could not be exact
        mean_distance_to_selected=(
            round(float(nearest.distance.mean(dtype=np.float64)), 6) if nearest.exact else None
        ),
        weights=nearest.summary(budget),
        policy_info={
            k: v for k, v in picked.info.items() if k not in ("covering_radius", "strata")
        },
        strata=picked.info.get("strata"),
        coverage=cov.coverage(manifest),
        manifest_columns=list(mf.MANIFEST_SCHEMA),
        source_files=_fingerprints(pool.sources),
    )
    report["duplicates"]["kept_in_pool"] = opts.keep_duplicates
    for row in report["datasets"]:
        aside = report["duplicates"]["set_aside_per_dataset"]
        row["duplicates_set_aside"] = aside.get(row["dataset_id"], 0)
        if "primary_only" in report:
            primary = report["primary_only"]["set_aside_per_dataset"]
            row["not_primary_set_aside"] = primary.get(row["dataset_id"], 0)
        qc = report["qc"]["per_dataset"].get(row["dataset_id"], {})
        row["qc_set_aside"] = qc.get("set_aside", 0)
    with timed(timings, "adds"):  # what each dataset adds: report.json, --json and the page
        report["adds"] = adds_table(manifest, pool.embedding.values)
    return Selection(mf.conform(manifest), report, pool.sources, pool.embedding.values)


def _fingerprints(sources: Sequence[Source]) -> dict[str, Any]:
    """Each source's fingerprint as the selection read it (see
    :func:`scurate._data.sources.fingerprint`): the loader and ``materialize`` refuse a source
    rewritten since. Sources in memory have none."""
    out: dict[str, Any] = {}
    for source in sources:
        path = Path(source.path)
        if str(path) not in out and path.exists():
            out[str(path)] = fingerprint(path)
    return out


def _coverage(pool: ScoredPool, picked: Chosen) -> tuple[list[float] | None, float, Assignment]:
    """The covering radius after each pick (where the policy kept it), at the budget, and each
    pool cell's nearest selected cell (duplicates set aside included): one search of the pool
    against the selection gives the weights, the mean distance and the radius."""
    values, order, budget = pool.embedding.values, picked.order, len(picked.order)
    radii = picked.info.get("covering_radius")
    if not isinstance(radii, list) or len(radii) != budget:
        radii = None
    # exact where affordable; else the pool's neighbour lists, and IVF for cells they miss
    nearest = assign(values, order, graph=pool.scores.graph)
    whole_pool = len(picked.candidates) == pool.manifest.height and not pool.has_reference
    radius = radii[-1] if radii and whole_pool else nearest.covering_radius(values, order)
    return radii, radius, nearest


REASONS = ("selected", "not_primary", "qc", "exact_copy", "near_copy", "quota_full", "past_budget")


def reasons(picked: Chosen, exact_dup_of: NDArray[np.int64], *, stratified: bool) -> pl.Series:
    """Why each cell is or is not selected, the first that applies of :data:`REASONS`: not
    primary data (``primary_only``), failed QC, an exact copy or a near duplicate set aside, or
    a candidate the policy did not reach (its stratum's quota full, or past the budget). Built
    as codes (a byte a cell), then made strings in polars: no Python string per cell."""
    code = {reason: i for i, reason in enumerate(REASONS)}
    n = len(picked.keep)
    out = np.full(n, code["quota_full" if stratified else "past_budget"], dtype=np.uint8)
    aside = ~picked.keep
    out[aside] = np.where(exact_dup_of[aside] >= 0, code["exact_copy"], code["near_copy"])
    out[picked.failed_qc] = code["qc"]
    if picked.primary is not None:
        out[~picked.primary] = code["not_primary"]
    out[picked.order] = code["selected"]
    named: pl.Series = pl.Series("reason", out).replace_strict(
        list(range(len(REASONS))), list(REASONS), return_dtype=pl.String
    )
    return named


def _with_selection(
    manifest: pl.DataFrame,
    picked: Chosen,
    weights: np.ndarray[Any, Any],
    *,
    stratified: bool = False,
) -> pl.DataFrame:
    """The selection columns: ``selected``, ``selection_rank``, ``weight``, ``policy`` and
    ``reason``."""
    pool, order = manifest.height, picked.order
    weight = np.full(pool, np.nan, dtype=np.float32)
    weight[order] = weights
    rank = np.full(pool, -1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    selected = pl.Series("selected", rank >= 0)
    # every column made on its own: an expression over the manifest's columns made polars
    # realign the whole frame's chunks (4 GB at ten million cells)
    policy = selected.to_frame().select(
        pl.when(pl.col("selected")).then(pl.lit(picked.policy.name)).alias("policy")
    )
    return manifest.with_columns(
        selected,
        pl.Series("selection_rank", rank).cast(pl.UInt32, strict=False),  # -1 becomes null
        pl.Series("weight", weight).fill_nan(None),
        policy.to_series(),
        reasons(picked, _exact_dup_rows(manifest), stratified=stratified),
    )


def _exact_dup_rows(manifest: pl.DataFrame) -> NDArray[np.int64]:
    """0 where the manifest names a kept copy in ``exact_dup_of``, else -1."""
    return np.where(manifest["exact_dup_of"].is_null().to_numpy(), -1, 0).astype(np.int64)


def annotate(adata: Any, result: Selection) -> Any:
    """Write a selection's ``selected``, ``selection_rank``, ``weight`` and scores
    (``exact_dup_of``, ``near_dup_group``, ``density``, ``novelty``...) into ``adata.obs``,
    as scanpy's functions do; ``adata`` is one of the AnnData objects the run selected from
    (or has the obs names of one of its datasets). Returns ``adata``."""
    return result.annotate(adata)


def score(sources: Input, *, progress: Progress | None = None, **options: Any) -> Scores:
    """Score every cell without selecting: the analysis mode behind ``scurate score``.

    ``options`` are the fields of :class:`scurate.ScoreOptions` (those of :func:`select` that
    do not choose cells). ``neighbours`` has each cell's nearest other cell and its distance,
    the distribution a near-duplicate threshold is chosen from.
    """
    return score_with(
        sources, ScoreOptions.of("score", **options), progress=progress or LogProgress()
    )


def score_with(sources: Input, opts: ScoreOptions, *, progress: Progress = quiet) -> Scores:
    """:func:`score` from an options object already checked."""
    with limited(opts.threads) as threads, using(backend_of(opts, threads)):
        pool = _open_pool(sources, opts, progress)
    manifest, scores = pool.manifest, pool.scores
    neighbours = pl.DataFrame(
        {
            "cell_id": manifest["cell_id"],
            "dataset_id": manifest["dataset_id"],
            "nn_distance": scores.nn_dist,
            "nn_cell_id": mf.ids_at(manifest["cell_id"], scores.nn_row, "nn_cell_id"),
        }
    )
    keep = keep_mask(scores.exact_dup_of, scores.near_dup_group)
    failed = qc_failures(pool, opts)  # what select would set aside
    report = rp.job_report(
        sources,
        opts,
        pool.timings,
        parameters={"threads_used": threads},
        **rp.pool_sections(pool, keep),
        qc=rp.qc_section(manifest, opts.qc.as_given(), failed),
    )
    return Scores(mf.conform(manifest), neighbours, report)


def build_index(
    corpus: Paths, *, out: str | os.PathLike[str], progress: Progress | None = None, **options: Any
) -> dict[str, Any]:
    """Embed and index a corpus once, for ``select(..., reference=[out])``; returns its
    description. ``options`` are the fields of :class:`scurate.IndexOptions`."""
    opts = IndexOptions.of("build_index", **options)
    return build_index_with(corpus, opts, out=out, progress=progress or LogProgress())


def build_index_with(
    corpus: Paths, opts: IndexOptions, *, out: str | os.PathLike[str], progress: Progress = quiet
) -> dict[str, Any]:
    """:func:`build_index` from an options object already checked."""
    index_folder(out)  # refused before anything is computed
    with limited(opts.threads):
        ref = build_reference(
            corpus,
            readers=source_readers(discover()),
            read=opts.read,
            obsm_key=opts.obsm_key,
            seed=opts.seed,
            index_factory=opts.index_factory,
            progress=progress,
        )
    path = save_reference(ref, out)
    return {**ref.info, "path": str(path)}


def outputs_of(folder: Path, **files: str) -> dict[str, str]:
    """The paths of a run's ``files`` in ``folder``, for the report's ``outputs``."""
    return {key: str(folder / name) for key, name in files.items()}


def select_to_dir(
    sources: Input,
    budget: int,
    *,
    out: str | os.PathLike[str],
    overwrite: bool = False,
    **options: Any,
) -> Selection:
    """:func:`select`, then write it into ``out`` (see :func:`write_selection`). ``out`` is
    checked before any computation; one that holds an earlier run needs ``overwrite=True``."""
    prepare(out, overwrite=overwrite)
    selection = select(sources, budget, **options)
    write_selection(selection, out)
    return selection


def write_selection(selection: Selection, out: str | os.PathLike[str]) -> None:
    """Write ``manifest.parquet``, then ``report.json`` (the record, last) into ``out`` as one
    unit (see :mod:`scurate._engine.outputs`): an interrupted run never leaves a manifest that
    looks complete, nor one beside an earlier run's report. ``report.html`` follows, a view of
    the record (:mod:`scurate._engine.pages`)."""
    start = time.perf_counter()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    report = selection.report
    report["outputs"] = outputs_of(
        folder, manifest="manifest.parquet", report="report.json", html=PAGE
    )

    def record(written: dict[str, Any]) -> dict[str, Any]:
        report["timings_s"]["write"] = round(time.perf_counter() - start, 4)
        report["written"] = written
        return report

    commit(
        folder,
        {"manifest.parquet": functools.partial(mf.write_manifest_to, selection.manifest)},
        ("report.json", record),
    )
    write_report(folder, selection.embedding)  # a view of the record, written after it


def score_to_dir(
    sources: Input, *, out: str | os.PathLike[str], overwrite: bool = False, **options: Any
) -> Scores:
    """:func:`score`, then write it into ``out`` (see :func:`write_scores`)."""
    prepare(out, overwrite=overwrite)
    scored = score(sources, **options)
    write_scores(scored, out)
    return scored


def write_scores(scored: Scores, out: str | os.PathLike[str]) -> None:
    """Write ``manifest.parquet``, ``neighbours.parquet``, then ``report.json`` (the record,
    last) into ``out`` as one unit; then ``report.html``, a view of the record."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    report = scored.report
    report["outputs"] = outputs_of(
        folder,
        manifest="manifest.parquet",
        neighbours="neighbours.parquet",
        report="report.json",
        html=PAGE,
    )

    def record(written: dict[str, Any]) -> dict[str, Any]:
        report["written"] = written
        return report

    commit(
        folder,
        {
            "manifest.parquet": functools.partial(mf.write_manifest_to, scored.manifest),
            "neighbours.parquet": scored.neighbours.write_parquet,
        },
        ("report.json", record),
    )
    write_report(folder)  # a view of the record, written after it

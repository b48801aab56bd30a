"""``scurate bench``: does a curated set generalize better than random cells to a lab, protocol
or donor it never saw?

**Split.** Cells whose column ``COL`` equals ``VALUE`` (a harmonized manifest column, or any obs
column of the sources) are the test set; every other cell is the pool. ``COL=*`` runs the whole
bench once per value of ``COL`` (values with fewer than ``MIN_TEST_CELLS`` cells, or whose
split cannot be scored or selected from, are skipped with a line saying why) and counts, across
them, the wins, ties and losses of every policy against random (:func:`summary.tally`).
The pool is handed to the shared stages as :class:`scurate._data.sources.RowSubset` sources,
which read nothing outside their rows: the embedding the policies choose in, the duplicate
scores and the variable genes are all computed from pool cells only, so no value of a test cell
can change a selection.

**Select.** Each policy picks each budget (a fraction of the pool, or a number of cells) with
each seed, exactly as ``scurate select`` does on the pool (duplicates set aside first, quotas
per stratum with ``strata``, the policy's generator seeded as ``select --seed`` seeds it). The
pool is embedded and scored once per holdout. A strata column, or a policy parameter
``label=COL``, that no harmonizer filled is read from the sources' obs, as ``--label`` is.

**Two proxies of what a trainer gets from the selected cells**, both on the log-normalized
expression (10,000 counts per cell, log1p) of the pool's highly variable genes; a variable
gene a test source did not measure is taken at the pool's mean:

- *supervised*: multinomial logistic regression (scikit-learn, L2, ``C=1``, lbfgs, no class
  weights, no scaling) trained on the selected cells' labels and scored on the test cells:
  macro-F1 and accuracy, recall per label, and ``rare_recall``, the mean recall over the labels
  that are under 1 % of the pool's labelled cells;
- *representation*: PCA (up to 50 components) fitted on the selected cells only and applied to
  the test cells, scored by kNN label transfer inside the test set (5 neighbours, 5 folds
  stratified by label, the same folds for every record: macro-F1 of the out-of-fold
  predictions), and by each test cell's distance to its nearest selected cell, measured in the
  pool's own PCA space so that it compares across policies (``test_to_selected_mean``/``_max``),
  and the share of test cells with a selected cell among their 5 nearest pool cells
  (``knn_coverage``). These three need no label: without ``label`` they are all that is scored.

Labels are the harmonized ones where the label column is a canonical field. Test cells whose
label no pool cell has (or that have none) are counted in ``split`` and not scored.

The same proxies trained on the whole pool give ``full_pool``, the line a curve should approach.
``summary`` has, per policy and budget, the mean and a 95 % t-interval over seeds, and the
difference from ``random`` paired by seed, with its interval and a verdict: ``won`` or ``lost``
where the interval excludes 0, else ``tied``.

**Threads.** BLAS runs on one thread throughout (its matrices here are small: more threads only
wait for each other, and on a busy machine they spin against other processes), OpenMP (FAISS,
the native core) on ``threads``. The libraries that bring their own BLAS or OpenMP (scipy's
OpenBLAS, scikit-learn's, torch) are loaded before the limits are set, since threadpoolctl
reaches only the libraries already loaded.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._bench.options import BenchOptions
from scurate._bench.proxies import Features, describe, evaluate, features, metric_names
from scurate._bench.split import Split, column_values, held_out_values, split
from scurate._bench.summary import summarize, tally
from scurate._compute.scoring import keep_mask
from scurate._data import harmonization as hz
from scurate._data.sources import Source
from scurate._engine.choose import choose
from scurate._engine.context import looked_at
from scurate._engine.jobs import outputs_of
from scurate._engine.options import check_budget
from scurate._engine.outputs import commit, prepare
from scurate._engine.progress import LogProgress
from scurate._engine.report import job_report
from scurate._engine.stages import ScoredPool, open_all, pool_manifest, quiet, scored_pool, timed
from scurate._engine.threads import limited, one_blas_thread
from scurate._plugins.registry import Plugins, discover
from scurate.errors import OptionError

Progress = Callable[[str, int, int], None]
log = logging.getLogger(__name__)

MIN_TEST_CELLS = 10  # with COL=*, a value with fewer cells is skipped


@dataclass
class Holdout:
    """One held-out value's run: ``records`` (one per policy, budget and seed), ``summary``,
    ``full_pool``, and ``details`` (``split``, ``proxies``, ``pool``)."""

    value: str
    records: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    full_pool: dict[str, Any]
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "summary": self.summary,
            "full_pool": self.full_pool,
            **self.details,
        }


@dataclass
class BenchResult:
    """Every holdout's run, ``across`` them the wins/ties/losses against random (see
    :func:`scurate._bench.summary.tally`), and the rest of ``bench.json``.

    With one holdout (``COL=VALUE``), ``records``, ``summary`` and ``full_pool`` are its own
    and ``bench.json`` has them at the top; with ``COL=*`` it lists them under ``holdouts``."""

    holdouts: list[Holdout]
    across: dict[str, Any]
    info: dict[str, Any]
    selections: pl.DataFrame  # holdout, policy, budget, seed, selection_rank, cell_id per pick
    every_value: bool = False
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every holdout's records (each names its ``holdout`` value)."""
        return [r for h in self.holdouts for r in h.records]

    @property
    def summary(self) -> list[dict[str, Any]]:
        """Every holdout's summary rows (each names its ``holdout`` value)."""
        return [r for h in self.holdouts for r in h.summary]

    @property
    def full_pool(self) -> dict[str, Any]:
        """The first holdout's proxies trained on its whole pool."""
        return self.holdouts[0].full_pool

    def to_dict(self) -> dict[str, Any]:
        if not self.every_value:
            (one,) = self.holdouts
            return {**one.to_dict(), "across_holdouts": self.across, **self.info}
        return {
            "holdouts": [
                {"holdout": h.details["split"]["holdout"], **h.to_dict()} for h in self.holdouts
            ],
            "skipped_holdouts": self.skipped,
            "across_holdouts": self.across,
            **self.info,
        }


def bench(
    sources: Sequence[str | os.PathLike[str]],
    *,
    holdout: str,
    label: str | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> BenchResult:
    """Hold out the cells where ``holdout`` (``"COL=VALUE"``, or ``"COL=*"`` for every value in
    turn) holds, select from the rest with every policy at every budget and seed, and score
    what each selection teaches (see the module doc for the split, the proxies and the summary).

    Parameters
    ----------
    sources
        .h5ad files, AnnData zarr stores, or folders searched for them.
    holdout
        ``COL=VALUE``: a manifest column (harmonized: ``donor_id``, ``assay``, ``dataset_id``...)
        or an obs column of the sources; ``COL=*`` holds out each of its values in turn.
    label
        The column the classifiers learn (``cell_type``; harmonized where it is a canonical
        field, else read from obs). None: only the label-free metrics.
    progress
        Called as ``progress(stage, done, total)`` while the run goes.
    **options
        The other fields of :class:`scurate.BenchOptions`: ``budgets``, ``policies``, ``seeds``,
        ``params``, ``representations``, ``strata``, ``quota``, and the pool's options of
        :func:`scurate.select`.
    """
    opts = BenchOptions.of("bench", holdout=holdout, label=label, **options)
    return bench_with(sources, opts, progress=progress or LogProgress())


def load_threaded_libraries(*, autoencoder: bool) -> None:
    """Import what brings its own BLAS or OpenMP runtime (scipy.linalg's OpenBLAS,
    scikit-learn's OpenMP, FAISS, torch), so that the thread limits set next reach it:
    threadpoolctl only limits libraries already loaded."""
    import scipy.linalg  # noqa: F401
    import sklearn.linear_model
    import sklearn.metrics  # noqa: F401

    from scurate._compute.faiss_index import gpu_count

    gpu_count()  # loads FAISS (and the OpenBLAS it bundles) through its one module
    if autoencoder:
        import torch  # noqa: F401


def bench_with(
    sources: Sequence[str | os.PathLike[str]], opts: BenchOptions, *, progress: Progress = quiet
) -> BenchResult:
    """:func:`bench` from an options object already checked."""
    if "autoencoder" in opts.representations:
        from scurate._bench.autoencoder import require_torch

        require_torch()
    load_threaded_libraries(autoencoder="autoencoder" in opts.representations)
    with limited(opts.threads) as threads, one_blas_thread():
        return _bench(sources, opts, progress, threads)


@dataclass
class _Opened:
    """The sources opened and harmonized once, with the columns every holdout reads."""

    plugins: Plugins
    sources: list[Source]
    values: NDArray[np.object_]  # the holdout column, per cell
    labels: NDArray[np.object_] | None
    attached: dict[str, NDArray[np.object_]]  # obs columns the pool's manifest gets, per cell
    targets: list[tuple[str, int]]  # the values to hold out, with their cells


def _open(
    sources: Sequence[str | os.PathLike[str]], opts: BenchOptions, timings: dict[str, float]
) -> _Opened:
    """Check the policies' names, open the sources, and read the holdout, label and strata
    columns (one line for a column that is nowhere)."""
    with timed(timings, "open"):
        plugins = discover()
        for name in opts.policies:
            plugins.get("policies", name, option="policies")
        opened = open_all(sources, plugins, opts.read)
    with timed(timings, "split"):
        harmonized = hz.harmonize_sources(
            opened, metadata_map=opts.metadata_map, set_fields=opts.set_fields, plugins=plugins
        )
        manifest = hz.attach(pool_manifest(opened), harmonized)
        column, value = opts.held_out
        if opts.every_value:
            values, targets = held_out_values(manifest, opened, column)
        else:
            values = column_values(manifest, opened, column, "holdout")
            targets = [(value, int(sum(v == value for v in values)))]
        labels = None
        if opts.label is not None:
            labels = column_values(manifest, opened, opts.label, "label")
        attached = _obs_columns(manifest, opened, opts)
    return _Opened(plugins, opened, values, labels, attached, targets)


def _filled(manifest: pl.DataFrame, name: str) -> bool:
    return name in manifest.columns and manifest[name].null_count() < manifest.height


def _obs_columns(
    manifest: pl.DataFrame, sources: Sequence[Source], opts: BenchOptions
) -> dict[str, NDArray[np.object_]]:
    """The strata columns, and the columns policies are given as ``label=COL``, that no
    harmonizer filled, read from the sources' obs (a strata column that is nowhere is one
    line; a ``label`` parameter is left for its policy to judge)."""
    out: dict[str, NDArray[np.object_]] = {}
    for name in opts.strata or ():
        if not _filled(manifest, name):
            out[name] = column_values(manifest, sources, name, "strata")
    for given in opts.params.values():
        param = given.get("label")
        if param and param not in out and not _filled(manifest, param):
            try:
                out[param] = column_values(manifest, sources, param, "params['label']")
            except OptionError:
                continue
    return out


def _bench(
    sources: Sequence[str | os.PathLike[str]],
    opts: BenchOptions,
    progress: Progress,
    threads: int,
) -> BenchResult:
    start = time.perf_counter()
    timings: dict[str, float] = {}
    opened = _open(sources, opts, timings)
    column = opts.held_out[0]
    holdouts: list[Holdout] = []
    skipped: list[dict[str, Any]] = []
    picks: list[pl.DataFrame] = []
    for value, n_cells in opened.targets:
        try:
            if opts.every_value and n_cells < MIN_TEST_CELLS:
                msg = f"{n_cells} cells, fewer than {MIN_TEST_CELLS}"
                raise OptionError(msg)
            one, chosen = _one(opened, value, opts, progress, timings)
        except OptionError as err:
            if not opts.every_value:
                raise
            skipped.append({"value": value, "n_cells": n_cells, "reason": str(err)})
            log.warning("holdout %s=%s skipped: %s", column, value, err)
            continue
        holdouts.append(one)
        picks.extend(chosen)
    if not holdouts:
        msg = f"holdout='{column}=*': every value was skipped ({skipped[0]['reason']}, ...)"
        raise OptionError(msg)
    timings["total"] = time.perf_counter() - start
    metrics = metric_names(opts.representations, labelled=opts.label is not None)
    details = {} if opts.every_value else holdouts[0].details
    info = job_report(
        sources,
        opts,
        timings,
        parameters={
            "threads_used": threads,
            "policy_plugins": {
                n: opened.plugins.get("policies", n, option="policies").plugin
                for n in opts.policies
            },
        },
        metrics=list(metrics),
        **details,
    )
    across = tally([h.summary for h in holdouts], metrics)
    selections = pl.concat(picks)
    return BenchResult(holdouts, across, info, selections, opts.every_value, skipped)


def _one(
    opened: _Opened, value: str, opts: BenchOptions, progress: Progress, timings: dict[str, float]
) -> tuple[Holdout, list[pl.DataFrame]]:
    """The whole bench with ``value`` held out: split, pool, features, every run."""
    column = opts.held_out[0]
    with timed(timings, "split"):
        split_ = split(
            opened.sources,
            pl.DataFrame(),
            (column, value),
            opts.label,
            values=opened.values,
            labels=opened.labels,
        )
    n_pool = split_.info["n_pool"]
    sizes = {b.text: b.cells(n_pool) for b in opts.budgets}
    for cells in sizes.values():
        check_budget(cells, n_pool, name="budgets")
    pool_timings: dict[str, float] = {}
    pool = scored_pool(
        split_.pool_sources, opts, plugins=opened.plugins, progress=progress, timings=pool_timings
    )
    for stage, seconds in pool_timings.items():
        timings[f"pool_{stage}"] = timings.get(f"pool_{stage}", 0.0) + seconds
    set_aside = (
        0
        if opts.keep_duplicates
        else int((~keep_mask(pool.scores.exact_dup_of, pool.scores.near_dup_group)).sum())
    )
    for cells in sizes.values():  # before any run: a budget no policy can fill is one line
        check_budget(cells, n_pool - set_aside, set_aside=set_aside, name="budgets")
    pool = _with_obs_columns(pool, opened.attached, split_.test)
    with timed(timings, "features"):
        embed_seed, _ = np.random.SeedSequence(opts.seed).spawn(2)
        feats = features(split_, np.random.default_rng(embed_seed), progress)
    labelled = opts.label is not None
    present = set(split_.info["pool_label_counts"])
    scored_test = np.array([v in present for v in split_.test_labels], dtype=bool)
    scored_labels = sorted({str(v) for v in split_.test_labels[scored_test]})
    scoring: dict[str, Any] = {
        "scored_test": scored_test,
        "scored_labels": scored_labels,
        "autoencoder": "autoencoder" in opts.representations,
        "labelled": labelled,
    }
    with timed(timings, "full_pool"):
        whole = evaluate(np.arange(n_pool, dtype=np.int64), feats, split_, **scoring)
    full_pool = {"n_selected": n_pool, **whole.metrics, "recall_per_label": whole.recall_per_label}
    stage = f"bench {column}={value}" if opts.every_value else "bench"
    records, picks = _runs(pool, feats, split_, opts, sizes, scoring, progress, stage)
    for rec in records:
        rec["holdout"] = value
    for k, frame in enumerate(picks):
        picks[k] = frame.select(pl.lit(value).alias("holdout"), pl.all())
    metrics = metric_names(opts.representations, labelled=labelled)
    summary = [{"holdout": value, **row} for row in summarize(records, metrics)]
    details = {
        "split": split_.info,
        "proxies": describe(feats, opts.representations, scored_labels, labelled=labelled),
        "pool": {"embedding": pool.embedding.info, "duplicates_set_aside": set_aside},
    }
    return Holdout(value, records, summary, full_pool, details), picks


def _with_obs_columns(
    pool: ScoredPool, attached: Mapping[str, NDArray[np.object_]], test: NDArray[np.bool_]
) -> ScoredPool:
    """The pool with the obs columns read for strata and ``label`` parameters in its manifest
    (the pool's cells are the cells outside ``test``, in the same order)."""
    if attached:
        pool.manifest = pool.manifest.with_columns(
            pl.Series(name, values[~test].tolist(), dtype=pl.String)
            for name, values in attached.items()
        )
    return pool


def _check_params_read(opts: BenchOptions, read: dict[str, set[str]]) -> None:
    """One line naming a ``--param`` that no policy given it read (``key=value`` is given to
    every policy, ``policy:key=value`` to one)."""
    for name in opts.policies:
        for key, value in opts.params.get(name, {}).items():
            given_to = [p for p in opts.policies if key in opts.params.get(p, {})]
            if not any(key in read[p] for p in given_to):
                where = f"{name}:" if len(given_to) == 1 and len(opts.policies) > 1 else ""
                reads = "; ".join(
                    f"{p} reads: {', '.join(sorted(read[p])) or 'none'}" for p in given_to
                )
                msg = f"params['{where}{key}']={value!r}: no policy given it reads it ({reads})"
                raise OptionError(msg)


def _runs(
    pool: ScoredPool,
    feats: Features,
    split_: Split,
    opts: BenchOptions,
    sizes: dict[str, int],
    scoring: dict[str, Any],
    progress: Progress,
    stage: str = "bench",
) -> tuple[list[dict[str, Any]], list[pl.DataFrame]]:
    """Every (seed, policy, budget): choose as ``select`` would, then evaluate the pick."""
    records: list[dict[str, Any]] = []
    picks: list[pl.DataFrame] = []
    cell_ids = pool.manifest["cell_id"].to_numpy()
    total, done = len(opts.policies) * len(opts.budgets) * opts.seeds, 0
    read: dict[str, set[str]] = {name: set() for name in opts.policies}
    for seed in range(opts.seeds):
        for name in opts.policies:
            for b in opts.budgets:
                t0 = time.perf_counter()
                picked = choose(pool, opts.selection(name, sizes[b.text], seed))
                select_s = time.perf_counter() - t0
                read[name] |= looked_at(picked.params)
                picks.append(
                    pl.DataFrame(
                        {
                            "policy": name,
                            "budget": b.text,
                            "seed": seed,
                            "selection_rank": np.arange(len(picked.order), dtype=np.uint32),
                            "cell_id": cell_ids[picked.order],
                        }
                    )
                )
                result = evaluate(picked.order, feats, split_, **scoring)
                labelled = scoring["labelled"]
                records.append(
                    {
                        "policy": name,
                        "budget": b.as_given(),
                        "n_selected": sizes[b.text],
                        "seed": seed,
                        **result.metrics,
                        "labels_covered": result.labels_covered if labelled else None,
                        "classifier_converged": result.converged if labelled else None,
                        "recall_per_label": result.recall_per_label,
                        "select_s": round(select_s, 4),
                    }
                )
                done += 1
                progress(stage, done, total)
        if seed == 0:  # every policy has run once: a parameter none of them read is a typo
            _check_params_read(opts, read)
    return records, picks


def bench_to_dir(
    sources: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    overwrite: bool = False,
    **options: Any,
) -> BenchResult:
    """:func:`bench`, then write it into ``out`` (see :func:`write_bench`); ``out`` is checked
    before any computation, and one holding an earlier run needs ``overwrite=True``."""
    prepare(out, overwrite=overwrite)
    result = bench(sources, **options)
    write_bench(result, out)
    return result


def write_bench(result: BenchResult, out: str | os.PathLike[str]) -> None:
    """Write ``selections.parquet`` (which cells each run picked, in order), ``bench.html`` and
    then ``bench.json`` (the record, last) into ``out`` as one unit."""
    from scurate._bench.html import render

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    result.info["outputs"] = outputs_of(
        folder, json="bench.json", html="bench.html", selections="selections.parquet"
    )
    payload = result.to_dict()

    def record(written: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "written": written}

    commit(
        folder,
        {
            "selections.parquet": result.selections.write_parquet,
            "bench.html": lambda tmp: tmp.write_text(render(payload), encoding="utf-8"),
        },
        ("bench.json", record),
    )

"""``scurate bench``: does a curated set generalize better than random cells to a lab, protocol
or donor it never saw?

**Split.** Cells whose column ``COL`` equals ``VALUE`` (a harmonized manifest column, or any obs
column of the sources) are the test set; every other cell is the pool. The pool is handed to
the shared stages as :class:`scurate._data.sources.RowSubset` sources, which read nothing
outside their rows: the embedding the policies choose in, the duplicate scores and the variable
genes are all computed from pool cells only, so no value of a test cell can change a selection.

**Select.** Each policy picks each budget (a fraction of the pool, or a number of cells) with
each seed, exactly as ``scurate select`` does on the pool (duplicates set aside first, the
policy's generator seeded as ``select --seed`` seeds it). The pool is embedded and scored once.

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
  pool's own PCA space so that it compares across policies (``test_to_selected_mean``/``_max``).

Labels are the harmonized ones where the label column is a canonical field. Test cells whose
label no pool cell has (or that have none) are counted in ``split`` and not scored.

The same proxies trained on the whole pool give ``full_pool``, the line a curve should approach.
``summary`` has, per policy and budget, the mean and a 95 % t-interval over seeds, and the
difference from ``random`` paired by seed, with its interval and a verdict: ``won`` or ``lost``
where the interval excludes 0, else ``tied``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from scurate._bench.options import BenchOptions
from scurate._bench.proxies import Features, describe, evaluate, features, metric_names
from scurate._bench.split import Split, split
from scurate._bench.summary import summarize
from scurate._compute.scoring import keep_mask
from scurate._data import harmonization as hz
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


@dataclass
class BenchResult:
    """``records`` (one per policy, budget and seed), ``summary``, ``full_pool`` and the rest
    of ``bench.json``."""

    records: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    full_pool: dict[str, Any]
    info: dict[str, Any]
    selections: pl.DataFrame  # policy, budget, seed, selection_rank, cell_id of every pick

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "summary": self.summary,
            "full_pool": self.full_pool,
            **self.info,
        }


def bench(
    sources: Sequence[str | os.PathLike[str]],
    *,
    holdout: str,
    label: str,
    progress: Progress | None = None,
    **options: Any,
) -> BenchResult:
    """Hold out the cells where ``holdout`` (``"COL=VALUE"``) holds, select from the rest with
    every policy at every budget and seed, and score what each selection teaches (see the
    module doc for the split, the proxies and the summary).

    Parameters
    ----------
    sources
        .h5ad files, AnnData zarr stores, or folders searched for them.
    holdout
        ``COL=VALUE``: a manifest column (harmonized: ``donor_id``, ``assay``, ``dataset_id``...)
        or an obs column of the sources.
    label
        The column the classifiers learn (``cell_type``; harmonized where it is a canonical
        field, else read from obs).
    progress
        Called as ``progress(stage, done, total)`` while the run goes.
    **options
        The other fields of :class:`scurate.BenchOptions`: ``budgets``, ``policies``, ``seeds``,
        ``params``, ``representations``, and the pool's options of :func:`scurate.select`.
    """
    opts = BenchOptions.of("bench", holdout=holdout, label=label, **options)
    return bench_with(sources, opts, progress=progress or LogProgress())


def _open(
    sources: Sequence[str | os.PathLike[str]], opts: BenchOptions, timings: dict[str, float]
) -> tuple[Plugins, Split]:
    """Check the policies' names, open the sources and cut them into test and pool."""
    if "autoencoder" in opts.representations:
        from scurate._bench.autoencoder import require_torch

        require_torch()
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
        return plugins, split(opened, manifest, opts.held_out, opts.label)


def bench_with(
    sources: Sequence[str | os.PathLike[str]], opts: BenchOptions, *, progress: Progress = quiet
) -> BenchResult:
    """:func:`bench` from an options object already checked."""
    with limited(opts.threads) as threads:
        return _bench(sources, opts, progress, threads)


def _bench(
    sources: Sequence[str | os.PathLike[str]],
    opts: BenchOptions,
    progress: Progress,
    threads: int,
) -> BenchResult:
    start = time.perf_counter()
    timings: dict[str, float] = {}
    plugins, split_ = _open(sources, opts, timings)
    n_pool = split_.info["n_pool"]
    sizes = {b.text: b.cells(n_pool) for b in opts.budgets}
    for cells in sizes.values():
        check_budget(cells, n_pool, name="budgets")
    pool_timings: dict[str, float] = {}
    pool = scored_pool(
        split_.pool_sources, opts, plugins=plugins, progress=progress, timings=pool_timings
    )
    timings.update({f"pool_{k}": v for k, v in pool_timings.items()})
    with timed(timings, "features"):
        embed_seed, _ = np.random.SeedSequence(opts.seed).spawn(2)
        feats = features(split_, np.random.default_rng(embed_seed), progress)
    present = set(split_.info["pool_label_counts"])
    scored_test = np.array([v in present for v in split_.test_labels], dtype=bool)
    scored_labels = sorted({str(v) for v in split_.test_labels[scored_test]})
    scoring: dict[str, Any] = {
        "scored_test": scored_test,
        "scored_labels": scored_labels,
        "autoencoder": "autoencoder" in opts.representations,
    }
    with timed(timings, "full_pool"), one_blas_thread():
        whole = evaluate(np.arange(n_pool, dtype=np.int64), feats, split_, **scoring)
    full_pool = {"n_selected": n_pool, **whole.metrics, "recall_per_label": whole.recall_per_label}
    records, picks = _runs(pool, feats, split_, opts, sizes, scoring, progress)
    timings["total"] = time.perf_counter() - start
    metrics = metric_names(opts.representations)
    set_aside = (
        0
        if opts.keep_duplicates
        else int((~keep_mask(pool.scores.exact_dup_of, pool.scores.near_dup_group)).sum())
    )
    info = job_report(
        sources,
        opts,
        timings,
        parameters={
            "threads_used": threads,
            "policy_plugins": {
                n: plugins.get("policies", n, option="policies").plugin for n in opts.policies
            },
        },
        metrics=list(metrics),
        split=split_.info,
        proxies=describe(feats, opts.representations, scored_labels),
        pool={"embedding": pool.embedding.info, "duplicates_set_aside": set_aside},
    )
    return BenchResult(records, summarize(records, metrics), full_pool, info, pl.concat(picks))


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
                read[name] |= looked_at(picked.ctx.params)
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
                with one_blas_thread():  # small matrices: more BLAS threads only wait
                    result = evaluate(picked.order, feats, split_, **scoring)
                records.append(
                    {
                        "policy": name,
                        "budget": b.as_given(),
                        "n_selected": sizes[b.text],
                        "seed": seed,
                        **result.metrics,
                        "labels_covered": result.labels_covered,
                        "classifier_converged": result.converged,
                        "recall_per_label": result.recall_per_label,
                        "select_s": round(select_s, 4),
                    }
                )
                done += 1
                progress("bench", done, total)
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

"""``scurate bench``: does a curated set generalize better than random cells to a lab, protocol
or donor it never saw?

**Split.** Cells whose column ``COL`` equals ``VALUE`` (a harmonized manifest column, or any obs
column of the sources) are the test set; every other cell is the pool. The pool is handed to the
shared stages as :class:`scurate._data.sources.RowSubset` sources, which read nothing outside their rows:
the embedding the policies choose in, the duplicate scores and the variable genes are all
computed from pool cells only, so no value of a test cell can change a selection.

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

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate._compute.dedup import MIN_GENES
from scurate._compute.embed import PcaModel, fit_pca, on_variable, pca_fit
from scurate._compute.scoring import keep_mask
from scurate._data import harmonization as hz
from scurate._data.sources import RowSubset, Source, open_sources
from scurate._engine import report as rp
from scurate._engine import stages
from scurate._engine.choose import parse_params
from scurate._engine.strata import obs_lookup
from scurate._plugins.registry import Registered, discover
from scurate.errors import InputError, OptionError

Progress = Callable[[str, int, int], None]

METRICS = (
    "macro_f1",
    "accuracy",
    "rare_recall",
    "knn_transfer_f1",
    "test_to_selected_mean",
    "test_to_selected_max",
)
AUTOENCODER_METRIC = "knn_transfer_f1_autoencoder"
REPRESENTATIONS = ("pca", "autoencoder")
LOWER_IS_BETTER = frozenset({"test_to_selected_mean", "test_to_selected_max"})
DEFAULT_BUDGETS = "0.05,0.1,0.25"
DEFAULT_POLICIES = "random,kcenter"
RARE_FRACTION = 0.01  # a label under this fraction of the pool's labelled cells is rare
LR_C = 1.0
LR_MAX_ITER = 1000
REPR_COMPS = 50
KNN_K = 5
CV_FOLDS = 5
SPLIT_SEED = 0  # the kNN-transfer folds and the representation PCA: the same for every record


def _quiet(stage: str, done: int, total: int) -> None:
    return None


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Budget:
    """A budget as given (``0.05`` is a fraction of the pool, ``500`` a number of cells)."""

    text: str
    value: float

    @property
    def is_fraction(self) -> bool:
        return "." in self.text or "e" in self.text.lower()

    def as_given(self) -> float | int:
        return self.value if self.is_fraction else int(self.value)

    def cells(self, pool: int) -> int:
        return max(1, round(self.value * pool)) if self.is_fraction else int(self.value)


def parse_budgets(budgets: str | Sequence[str | float | int]) -> list[Budget]:
    """``"0.05,0.1,500"`` (or a list) to budgets: fractions in (0, 1) or whole cells >= 1."""
    parts = budgets.split(",") if isinstance(budgets, str) else [str(b) for b in budgets]
    out: list[Budget] = []
    for raw in (p.strip() for p in parts):
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        budget = Budget(raw, value)
        ok = math.isfinite(value) and (
            0 < value < 1 if budget.is_fraction else value >= 1 and value == int(value)
        )
        if not raw or not ok:
            msg = (
                f"--budgets '{raw}': expected a fraction of the pool in (0, 1), like 0.05, "
                "or a whole number of cells, like 500"
            )
            raise OptionError(msg)
        out.append(budget)
    if len({b.text for b in out}) != len(out):
        msg = f"--budgets '{','.join(b.text for b in out)}': a budget is named twice"
        raise OptionError(msg)
    return out


def parse_holdout(holdout: str) -> tuple[str, str]:
    column, sep, value = holdout.partition("=")
    if not sep or not column.strip() or not value.strip():
        msg = f"--holdout '{holdout}': expected COLUMN=VALUE, like donor_id=D3 or assay=Drop-seq"
        raise OptionError(msg)
    return column.strip(), value.strip()


def parse_policies(policies: str | Sequence[str]) -> list[str]:
    """Policy names, ``random`` first (added when missing: every difference is taken from it)."""
    parts = policies.split(",") if isinstance(policies, str) else list(policies)
    names = [p.strip() for p in parts if p.strip()]
    if len(set(names)) != len(names):
        msg = f"--policies '{','.join(names)}': a policy is named twice"
        raise OptionError(msg)
    return ["random", *[n for n in names if n != "random"]]


def parse_representations(representations: str | Sequence[str]) -> list[str]:
    """``pca`` (always) and optionally ``autoencoder`` (needs torch)."""
    parts = representations.split(",") if isinstance(representations, str) else representations
    names = [p.strip() for p in parts if p.strip()]
    unknown = [n for n in names if n not in REPRESENTATIONS]
    if unknown:
        msg = (
            f"--representations {unknown[0]}: not a representation (choose from: "
            f"{', '.join(REPRESENTATIONS)})"
        )
        raise OptionError(msg)
    if "autoencoder" in names:
        from scurate._bench.autoencoder import require_torch

        require_torch()
    return ["pca", *(["autoencoder"] if "autoencoder" in names else [])]


def metric_names(representations: Sequence[str]) -> tuple[str, ...]:
    """The metrics a run records: :data:`METRICS`, plus the autoencoder's kNN transfer."""
    return METRICS + ((AUTOENCODER_METRIC,) if "autoencoder" in representations else ())


def parse_scoped_params(pairs: Sequence[str], policies: Sequence[str]) -> dict[str, dict[str, str]]:
    """``key=value`` for every policy, or ``policy:key=value`` for one."""
    out: dict[str, dict[str, str]] = {p: {} for p in policies}
    for pair in pairs:
        head, sep, _ = pair.partition("=")
        name, colon, key = head.partition(":")
        if sep and colon:
            if name.strip() not in out:
                msg = f"--param '{pair}': '{name.strip()}' is not among --policies"
                raise OptionError(msg)
            value = pair.partition("=")[2]
            out[name.strip()].update(parse_params([f"{key}={value}"]))
        else:
            for given in out.values():
                given.update(parse_params([pair]))
    return out


# --------------------------------------------------------------------------- split


def column_values(
    manifest: pl.DataFrame, sources: Sequence[Source], name: str, option: str
) -> NDArray[np.object_]:
    """A column's values per cell as strings (None where missing): the manifest's harmonized
    column where it has any value, else the sources' obs column of that name."""
    if name in manifest.columns and manifest[name].null_count() < manifest.height:
        return np.asarray(manifest[name].cast(pl.String).to_list(), dtype=object)
    parts = obs_lookup(sources)(name)
    if all(p is None for p in parts):
        filled = [c for c in manifest.columns if manifest[c].null_count() < manifest.height]
        msg = (
            f"{option} {name}: no such column (neither a filled manifest column: "
            f"{', '.join(filled)}; nor an obs column of any source)"
        )
        raise OptionError(msg)
    return np.concatenate(
        [
            np.full(s.n_obs, None, dtype=object) if p is None else p
            for p, s in zip(parts, sources, strict=True)
        ]
    )


@dataclass
class Split:
    """Which cells are tested, which are pooled, and the labels of both."""

    test: NDArray[np.bool_]  # over all cells, in source order
    pool_labels: NDArray[np.object_]  # the pool's cells in order; None where unlabelled
    test_labels: NDArray[np.object_]
    pool_sources: list[Source]
    test_sources: list[Source]
    info: dict[str, Any] = field(default_factory=dict)
    pool_labelled: NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        self.pool_labelled = np.array([v is not None for v in self.pool_labels], dtype=bool)


def _subsets(sources: Sequence[Source], mask: NDArray[np.bool_]) -> list[Source]:
    out: list[Source] = []
    at = 0
    for source in sources:
        rows = np.flatnonzero(mask[at : at + source.n_obs])
        at += source.n_obs
        if len(rows) == source.n_obs:
            out.append(source)
        elif len(rows):
            out.append(RowSubset(source, rows))
    return out


def split(sources: Sequence[Source], manifest: pl.DataFrame, holdout: str, label: str) -> Split:
    """Cut the cells into test (``COL == VALUE``) and pool, with their labels."""
    column, value = parse_holdout(holdout)
    values = column_values(manifest, sources, column, "--holdout")
    test = np.array([v == value for v in values], dtype=bool)
    if not test.any():
        seen = sorted({str(v) for v in values if v is not None})
        shown = ", ".join(seen[:12]) + (" ..." if len(seen) > 12 else "")
        msg = f"--holdout {column}={value}: no cell has that value (values: {shown})"
        raise OptionError(msg)
    if test.all():
        msg = f"--holdout {column}={value}: every cell has that value, which leaves no pool"
        raise OptionError(msg)
    labels = column_values(manifest, sources, label, "--label")
    pool_labels = labels[~test]
    present = {v for v in pool_labels if v is not None}
    if not present:
        msg = f"--label {label}: no pool cell has a label"
        raise OptionError(msg)
    test_labels = labels[test]
    unscored: dict[str, int] = {}
    for v in test_labels:
        if v not in present:
            key = "(no label)" if v is None else str(v)
            unscored[key] = unscored.get(key, 0) + 1
    scored = int(sum(v in present for v in test_labels))
    if scored == 0:
        msg = (
            f"--label {label}: none of the {int(test.sum())} test cells has a label that a pool "
            "cell has, so nothing can be scored"
        )
        raise OptionError(msg)
    counts = pl.Series(pool_labels[[v is not None for v in pool_labels]].tolist()).value_counts()
    pool_counts = {str(k): int(n) for k, n in counts.iter_rows()}
    labelled = sum(pool_counts.values())
    rare = sorted(k for k, n in pool_counts.items() if n < RARE_FRACTION * labelled)
    info = {
        "holdout": {"column": column, "value": value},
        "label": label,
        "n_cells": len(values),
        "n_pool": int((~test).sum()),
        "n_test": int(test.sum()),
        "n_test_scored": scored,
        "test_labels_not_scored": dict(sorted(unscored.items())),
        "pool_label_counts": dict(sorted(pool_counts.items(), key=lambda kv: -kv[1])),
        "rare_labels": rare,
        "rare_fraction": RARE_FRACTION,
    }
    return Split(
        test, pool_labels, test_labels, _subsets(sources, ~test), _subsets(sources, test), info
    )


# --------------------------------------------------------------------------- features


@dataclass
class Features:
    """Log-normalized expression of the pool's variable genes, and the pool's PCA of it."""

    pool: sp.csr_matrix
    test: sp.csr_matrix
    pool_coords: NDArray[np.float32]
    test_coords: NDArray[np.float32]
    model: PcaModel


def expression(sources: Sequence[Source], model: PcaModel) -> sp.csr_matrix:
    """Every cell on the model's variable genes, log-normalized as the model was fitted; a
    variable gene a source did not measure is taken at the model's mean."""
    parts: list[sp.csr_matrix] = []
    for source in on_variable(sources, model):
        fill = np.where(source.unmeasured, model.mean, 0.0).astype(np.float32)
        for _, _, part in source.chunks():
            if source.unmeasured.any():
                part = part + sp.csr_matrix(np.broadcast_to(fill, part.shape))
            parts.append(sp.csr_matrix(part, dtype=np.float32))
    return sp.csr_matrix(sp.vstack(parts, format="csr"), dtype=np.float32)


def features(split_: Split, rng: np.random.Generator, progress: Progress) -> Features:
    model = fit_pca(split_.pool_sources, rng=rng, progress=progress)
    pool = expression(split_.pool_sources, model)
    test = expression(split_.test_sources, model)

    def coords(x: sp.csr_matrix) -> NDArray[np.float32]:
        return np.ascontiguousarray(x @ model.loadings - model.center, dtype=np.float32)

    return Features(pool, test, coords(pool), coords(test), model)


# --------------------------------------------------------------------------- proxies


def _folds(labels: NDArray[np.object_], n_folds: int, seed: int) -> NDArray[np.int64]:
    """Folds stratified by label: each label's cells, shuffled, dealt round the folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for value in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == value)
        rng.shuffle(members)
        fold[members] = (np.arange(len(members)) + offset) % n_folds
        offset += len(members)
    return fold


def knn_transfer_f1(
    coords: NDArray[np.float32], labels: NDArray[np.object_], scored: Sequence[str]
) -> float:
    """Macro-F1 of kNN label transfer inside a set of cells, by stratified cross-validation."""
    import faiss
    from sklearn.metrics import f1_score

    n_folds = min(CV_FOLDS, len(labels))
    fold = _folds(labels, n_folds, SPLIT_SEED)
    predicted = np.empty(len(labels), dtype=object)
    names, codes = np.unique(labels.astype(str), return_inverse=True)
    for f in range(n_folds):
        train, held = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        if len(held) == 0:
            continue
        k = min(KNN_K, len(train))
        index = faiss.IndexFlatL2(coords.shape[1])
        index.add(np.ascontiguousarray(coords[train]))
        _, nn = index.search(np.ascontiguousarray(coords[held]), k)
        votes = np.zeros((len(held), len(names)), dtype=np.float64)
        near = codes[train][nn]
        for j in range(k):  # nearer neighbours break ties: weight 1 + tiny rank bonus
            np.add.at(votes, (np.arange(len(held)), near[:, j]), 1.0 + (k - j) * 1e-6)
        predicted[held] = names[votes.argmax(axis=1)]
    return float(
        f1_score(
            labels.astype(str),
            predicted.astype(str),
            labels=list(scored),
            average="macro",
            zero_division=0,
        )
    )


@dataclass
class Evaluation:
    """What a set of pool cells gives a trainer, on the test cells."""

    metrics: dict[str, float | None]
    recall_per_label: dict[str, float]
    labels_covered: int
    converged: bool


def evaluate(
    rows: NDArray[np.int64],
    feats: Features,
    split_: Split,
    *,
    scored_test: NDArray[np.bool_],
    scored_labels: Sequence[str],
    autoencoder: bool = False,
) -> Evaluation:
    """Train both proxies on the pool ``rows`` and score them on the test cells."""
    import faiss
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, recall_score

    pool_labels, test_labels = split_.pool_labels, split_.test_labels
    train = rows[split_.pool_labelled[rows]]
    y_true = test_labels[scored_test].astype(str)
    x_test = feats.test[np.flatnonzero(scored_test)]
    y_train = pool_labels[train].astype(str)
    classes = np.unique(y_train)
    converged = True
    if len(classes) == 0:
        y_pred = np.full(len(y_true), "", dtype=object)
    elif len(classes) == 1:
        y_pred = np.full(len(y_true), classes[0], dtype=object)
    else:
        model = LogisticRegression(C=LR_C, max_iter=LR_MAX_ITER)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(feats.pool[train], y_train)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        y_pred = model.predict(x_test)
    y_pred = np.asarray(y_pred).astype(str)
    labels = list(scored_labels)
    recalls = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    per_label = {lab: float(r) for lab, r in zip(labels, recalls, strict=True)}
    rare = [lab for lab in split_.info["rare_labels"] if lab in per_label]
    metrics: dict[str, float | None] = {
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "accuracy": float(np.mean(y_true == y_pred)),
        "rare_recall": float(np.mean([per_label[lab] for lab in rare])) if rare else None,
    }
    # representation learned from the selected cells only
    sample = feats.pool[rows]
    n_comps = max(1, min(REPR_COMPS, sample.shape[1], len(rows) - 1))
    if len(rows) >= 2:
        mean, components, _ = pca_fit(sample, n_comps, np.random.default_rng(SPLIT_SEED))
        coords = np.asarray(x_test @ components - mean @ components, dtype=np.float32)
        metrics["knn_transfer_f1"] = knn_transfer_f1(coords, y_true.astype(object), labels)
    else:
        metrics["knn_transfer_f1"] = None
    if autoencoder:
        from scurate._bench.autoencoder import fit_encode

        latent = fit_encode(sample, x_test, seed=SPLIT_SEED)
        metrics[AUTOENCODER_METRIC] = knn_transfer_f1(latent, y_true.astype(object), labels)
    index = faiss.IndexFlatL2(feats.pool_coords.shape[1])
    index.add(np.ascontiguousarray(feats.pool_coords[rows]))
    dist, _ = index.search(feats.test_coords, 1)
    dist = np.sqrt(np.maximum(dist[:, 0], 0.0))
    metrics["test_to_selected_mean"] = float(dist.mean(dtype=np.float64))
    metrics["test_to_selected_max"] = float(dist.max())
    covered = len(set(pool_labels[train].tolist()))
    return Evaluation(metrics, per_label, covered, converged)


# --------------------------------------------------------------------------- summary


def _interval(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """Mean and 95 % t-interval (None with fewer than two values)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, None, None
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def _verdict(metric: str, low: float | None, high: float | None) -> str | None:
    if low is None or high is None:
        return None
    better_if_positive = metric not in LOWER_IS_BETTER
    if low > 0:
        return "won" if better_if_positive else "lost"
    if high < 0:
        return "lost" if better_if_positive else "won"
    return "tied"


def summarize(
    records: Sequence[Mapping[str, Any]], metrics: Sequence[str] = METRICS
) -> list[dict[str, Any]]:
    """Per (policy, budget): mean and 95 % interval over seeds of every metric, the mean recall
    per label, and the difference from ``random`` paired by seed."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["policy"], str(rec["budget"])), []).append(rec)
    out = []
    for (policy, budget), recs in groups.items():
        row: dict[str, Any] = {
            "policy": policy,
            "budget": recs[0]["budget"],
            "n_selected": recs[0]["n_selected"],
            "n_seeds": len(recs),
        }
        for metric in metrics:
            values = [r[metric] for r in recs if r[metric] is not None]
            if values:
                mean, low, high = _interval(values)
                row[metric] = {"mean": mean, "ci_low": low, "ci_high": high}
            else:
                row[metric] = None
        labels = recs[0]["recall_per_label"]
        row["recall_per_label"] = {
            lab: float(np.mean([r["recall_per_label"][lab] for r in recs])) for lab in labels
        }
        baseline = {r["seed"]: r for r in groups.get(("random", budget), [])}
        if policy != "random" and baseline:
            diffs: dict[str, Any] = {}
            for metric in metrics:
                pairs = [
                    r[metric] - baseline[r["seed"]][metric]
                    for r in recs
                    if r["seed"] in baseline
                    and r[metric] is not None
                    and baseline[r["seed"]][metric] is not None
                ]
                if not pairs:
                    diffs[metric] = None
                    continue
                mean, low, high = _interval(pairs)
                diffs[metric] = {
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "verdict": _verdict(metric, low, high),
                }
            row["vs_random"] = diffs
        out.append(row)
    return out


# --------------------------------------------------------------------------- driver


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
    budgets: str | Sequence[str | float | int] = DEFAULT_BUDGETS,
    policies: str | Sequence[str] = DEFAULT_POLICIES,
    seeds: int = 5,
    params: Sequence[str] = (),
    representations: str | Sequence[str] = "pca",
    obsm_key: str | None = None,
    embedder: str = "pca",
    keep_duplicates: bool = False,
    near_dup_eps: float | None = None,
    index_factory: str | None = None,
    dup_min_genes: int = MIN_GENES,
    metadata_map: str | os.PathLike[str] | None = None,
    set_fields: Sequence[str] = (),
    progress: Progress | None = None,
) -> BenchResult:
    """Hold out the cells where ``holdout`` (``"COL=VALUE"``) holds, select from the rest with
    every policy at every budget and seed, and score what each selection teaches (see the
    module doc for the split, the proxies and the summary).

    Parameters
    ----------
    sources
        .h5ad files, or folders searched for them.
    holdout
        ``COL=VALUE``: a manifest column (harmonized: ``donor_id``, ``assay``, ``dataset_id``...)
        or an obs column of the sources.
    label
        The column the classifiers learn (``cell_type``; harmonized where it is a canonical
        field, else read from obs).
    budgets
        Fractions of the pool (``0.05``) or numbers of cells (``500``), as a comma list or a list.
    policies
        Registered policy names; ``random`` is always run, first.
    seeds
        Seeds 0..seeds-1, each one a ``select --seed`` for every policy and budget.
    params
        ``key=value`` for every policy, or ``policy:key=value`` for one.
    representations
        ``pca`` (always), and ``autoencoder`` for a small torch autoencoder learned from the
        selected cells (:mod:`scurate._bench.autoencoder`), scored by the same kNN transfer.
    The other options are those of :func:`scurate.select`, applied to the pool.
    """
    progress = progress or _quiet
    start = time.perf_counter()
    timings: dict[str, float] = {}
    budget_list = parse_budgets(budgets)
    names = parse_policies(policies)
    scoped = parse_scoped_params(params, names)
    kinds = parse_representations(representations)
    metrics = metric_names(kinds)
    if seeds < 1:
        msg = f"--seeds {seeds}: must be at least 1"
        raise OptionError(msg)
    with stages.timed(timings, "open"):
        plugins = discover()
        chosen: dict[str, Registered] = {
            n: plugins.get("policies", n, option="--policies") for n in names
        }
        opened = open_sources(sources, stages.source_readers(plugins))
    with stages.timed(timings, "split"):
        harmonized = hz.harmonize_sources(
            opened, metadata_map=metadata_map, set_fields=set_fields, plugins=plugins
        )
        manifest = hz.attach(stages.pool_manifest(opened), harmonized)
        split_ = split(opened, manifest, holdout, label)
    n_pool = split_.info["n_pool"]
    sizes = {b.text: b.cells(n_pool) for b in budget_list}
    for b in budget_list:
        if sizes[b.text] > n_pool:
            msg = f"--budgets {b.text}: more than the {n_pool} cells in the pool"
            raise OptionError(msg)
    embed_seed, _ = np.random.SeedSequence(0).spawn(2)
    pool = stages.scored_pool(
        [],
        opened=split_.pool_sources,
        obsm_key=obsm_key,
        embedder=embedder,
        seed=0,
        embed_seed=embed_seed,
        reference=None,
        near_dup_eps=near_dup_eps,
        index_factory=index_factory,
        dup_min_genes=dup_min_genes,
        progress=progress,
        metadata_map=metadata_map,
        set_fields=set_fields,
    )
    timings.update({f"pool_{k}": v for k, v in pool.timings.items()})
    with stages.timed(timings, "features"):
        feats = features(split_, np.random.default_rng(embed_seed), progress)
    present = set(split_.info["pool_label_counts"])
    scored_test = np.array([v in present for v in split_.test_labels], dtype=bool)
    scored_labels = sorted({str(v) for v in split_.test_labels[scored_test]})
    kwargs: dict[str, Any] = {
        "scored_test": scored_test,
        "scored_labels": scored_labels,
        "autoencoder": "autoencoder" in kinds,
    }

    with stages.timed(timings, "full_pool"):
        whole = evaluate(np.arange(n_pool, dtype=np.int64), feats, split_, **kwargs)
    full_pool = {"n_selected": n_pool, **whole.metrics, "recall_per_label": whole.recall_per_label}

    records: list[dict[str, Any]] = []
    picks: list[pl.DataFrame] = []
    cell_ids = pool.manifest["cell_id"].to_numpy()
    total, done = len(names) * len(budget_list) * seeds, 0
    for seed in range(seeds):
        _, policy_seed = np.random.SeedSequence(seed).spawn(2)
        for name in names:
            for b in budget_list:
                t0 = time.perf_counter()
                picked = stages.choose(
                    pool,
                    chosen[name],
                    sizes[b.text],
                    rng=np.random.default_rng(policy_seed),
                    params=scoped[name],
                    keep_duplicates=keep_duplicates,
                )
                select_s = time.perf_counter() - t0
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
                result = evaluate(picked.order, feats, split_, **kwargs)
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
    timings["total"] = time.perf_counter() - start
    info = {
        "parameters": {
            "sources": [str(s) for s in sources],
            "holdout": holdout,
            "label": label,
            "budgets": [b.as_given() for b in budget_list],
            "policies": names,
            "policy_plugins": {n: chosen[n].plugin for n in names},
            "params": scoped,
            "seeds": seeds,
            "representations": kinds,
            "obsm_key": obsm_key,
            "embedder": None if obsm_key else embedder,
            "keep_duplicates": keep_duplicates,
            "near_dup_eps": near_dup_eps,
            "index_factory": index_factory,
            "dup_min_genes": dup_min_genes,
            "metadata_map": None if metadata_map is None else str(metadata_map),
            "set": list(set_fields),
        },
        "metrics": list(metrics),
        "split": split_.info,
        "proxies": {
            "features": (
                f"log1p of counts scaled to 10,000 per cell, on the pool's "
                f"{len(feats.model.variable)} highly variable genes"
            ),
            "supervised": (
                f"logistic regression (scikit-learn, multinomial, L2, C={LR_C}, lbfgs, "
                f"max_iter={LR_MAX_ITER}, no class weights)"
            ),
            "representation": (
                f"PCA (up to {REPR_COMPS} components) fitted on the selected cells; kNN transfer "
                f"with k={KNN_K}, {CV_FOLDS} folds stratified by label, inside the test set"
            ),
            "autoencoder": (
                "genes-128-32-128-genes, MSE, Adam 1e-3, 300 steps of 128 cells, on the "
                "selected cells; kNN transfer on its 32-d code as for PCA"
                if "autoencoder" in kinds
                else None
            ),
            "distance_space": (
                f"the pool's PCA ({feats.model.loadings.shape[1]} components), "
                "Euclidean, test cell to its nearest selected cell"
            ),
            "scored_labels": scored_labels,
        },
        "pool": {
            "embedding": pool.embedding.info,
            "duplicates_set_aside": 0
            if keep_duplicates
            else int((~keep_mask(pool.scores.exact_dup_of, pool.scores.near_dup_group)).sum()),
        },
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "versions": rp.versions(),
    }
    return BenchResult(records, summarize(records, metrics), full_pool, info, pl.concat(picks))


def bench_to_dir(
    sources: Sequence[str | os.PathLike[str]], *, out: str | os.PathLike[str], **options: Any
) -> BenchResult:
    """``bench``, then write ``bench.json``, ``bench.html`` and ``selections.parquet`` (which
    cells each run picked, in order) into ``out``, each under a temporary name, then renamed."""
    from scurate._bench.html import render

    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        msg = f"-o {out_dir}: exists and is not a folder"
        raise InputError(msg)
    result = bench(sources, **options)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.info["outputs"] = {
        "json": str(out_dir / "bench.json"),
        "html": str(out_dir / "bench.html"),
        "selections": str(out_dir / "selections.parquet"),
    }
    payload = result.to_dict()
    tmp_parquet = out_dir / ".selections.parquet.partial"
    result.selections.write_parquet(tmp_parquet)
    tmp_parquet.replace(out_dir / "selections.parquet")
    rp.write_json(payload, out_dir / "bench.json")
    tmp = out_dir / ".bench.html.partial"
    tmp.write_text(render(payload), encoding="utf-8")
    tmp.replace(out_dir / "bench.html")
    return result

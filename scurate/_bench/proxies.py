"""The two proxies of what a trainer gets from a set of selected cells, scored on the held-out
cells (see :mod:`scurate._bench.run` for the protocol).

Both read the log-normalized expression (10,000 counts per cell, log1p) of the pool's highly
variable genes; a variable gene a test source did not measure is taken at the pool's mean.
The supervised proxy is a logistic regression trained on the selected cells' labels; the
representation proxy a PCA fitted on the selected cells, scored by kNN label transfer inside
the test set. The label-free metrics, measured with or without a label, are in the pool's PCA:
each test cell's distance to its nearest selected cell (mean and max), and the kNN coverage,
the share of test cells that have a selected cell among their ``COVERAGE_K`` nearest pool
cells (so random covers about ``1 - (1 - f) ** COVERAGE_K`` of them at a fraction ``f``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate._bench.split import Split
from scurate._compute.embed import PcaModel, fit_pca, on_variable, pca_fit
from scurate._compute.faiss_index import knn, nearest_distance
from scurate._data.sources import Source

Progress = Callable[[str, int, int], None]

LABEL_FREE = ("test_to_selected_mean", "test_to_selected_max", "knn_coverage")
METRICS = ("macro_f1", "accuracy", "rare_recall", "knn_transfer_f1", *LABEL_FREE)
AUTOENCODER_METRIC = "knn_transfer_f1_autoencoder"
LOWER_IS_BETTER = frozenset({"test_to_selected_mean", "test_to_selected_max"})
LR_C = 1.0
LR_MAX_ITER = 1000
REPR_COMPS = 50
KNN_K = 5
CV_FOLDS = 5
COVERAGE_K = 5  # knn_coverage: covered when one of a test cell's 5 nearest pool cells is picked
SPLIT_SEED = 0  # the kNN-transfer folds and the representation PCA: the same for every record


def metric_names(representations: Sequence[str], *, labelled: bool = True) -> tuple[str, ...]:
    """The metrics a run records: :data:`METRICS` (only :data:`LABEL_FREE` without a label),
    plus the autoencoder's kNN transfer."""
    if not labelled:
        return LABEL_FREE
    return METRICS + ((AUTOENCODER_METRIC,) if "autoencoder" in representations else ())


@dataclass
class Features:
    """Log-normalized expression of the pool's variable genes, and the pool's PCA of it."""

    pool: sp.csr_matrix
    test: sp.csr_matrix
    pool_coords: NDArray[np.float32]
    test_coords: NDArray[np.float32]
    model: PcaModel
    test_pool_nn: NDArray[np.int64]  # each test cell's COVERAGE_K nearest pool cells


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

    pool_coords, test_coords = coords(pool), coords(test)
    _, nn = knn(pool_coords, test_coords, min(COVERAGE_K, len(pool_coords)), exact=True)
    return Features(pool, test, pool_coords, test_coords, model, nn)


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
        _, nn = knn(coords[train], coords[held], k, exact=True)
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
    labelled: bool = True,
) -> Evaluation:
    """Train both proxies on the pool ``rows`` and score them on the test cells (without
    ``labelled``, only the label-free metrics)."""
    if not labelled:
        return Evaluation(label_free(rows, feats), {}, 0, True)
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
    metrics |= label_free(rows, feats)
    covered = len(set(pool_labels[train].tolist()))
    return Evaluation(metrics, per_label, covered, converged)


def label_free(rows: NDArray[np.int64], feats: Features) -> dict[str, float | None]:
    """The metrics that need no label, in the pool's PCA: distance from each test cell to its
    nearest selected cell (mean, max), and the share of test cells with a selected cell among
    their :data:`COVERAGE_K` nearest pool cells."""
    dist = nearest_distance(feats.pool_coords[rows], feats.test_coords)
    selected = np.zeros(len(feats.pool_coords), dtype=bool)
    selected[rows] = True
    return {
        "test_to_selected_mean": float(dist.mean(dtype=np.float64)),
        "test_to_selected_max": float(dist.max()),
        "knn_coverage": float(selected[feats.test_pool_nn].any(axis=1).mean()),
    }


def describe(
    feats: Features, representations: Sequence[str], scored_labels: list[str], *, labelled: bool
) -> dict[str, Any]:
    """bench.json's ``proxies``: what each proxy is, in words, with its settings."""
    space = {
        "distance_space": (
            f"the pool's PCA ({feats.model.loadings.shape[1]} components), "
            "Euclidean, test cell to its nearest selected cell"
        ),
        "knn_coverage": (
            f"share of test cells with a selected cell among their {COVERAGE_K} nearest pool "
            "cells (exact search, the pool's PCA)"
        ),
    }
    if not labelled:
        return {"supervised": None, "representation": None, "autoencoder": None, **space}
    return {
        **space,
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
            if "autoencoder" in representations
            else None
        ),
        "scored_labels": scored_labels,
    }

"""Label-free cluster balancing: FAISS k-means clusters of the embedding, water-filled as
``reweight`` fills cell types (:func:`.balance.water_fill`), so small clusters (rare states)
are taken whole before large ones get more than their equal share.

The clusters do not depend on the budget, so the order is prefix-ordered: the first ``m``
cells of a run with budget ``B`` are the run with budget ``m``.
"""

from __future__ import annotations

import faiss
import numpy as np
from numpy.typing import NDArray
from scurate import SelectionContext

from .balance import water_fill
from .params import number

DEFAULT_CLUSTERS = 20  # Baron, each donor held out: 50 lost mean distance at 5 %, 10 won less
NITER = 25
TRAIN_PER_CLUSTER = 256  # k-means trains on a seeded sample of at most this many per cluster


def kmeans_labels(
    x: NDArray[np.float32], clusters: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    """Each row's nearest of ``clusters`` FAISS k-means centroids. K-means trains on a seeded
    sample of at most ``TRAIN_PER_CLUSTER`` rows per cluster, from k-means++ seeds (FAISS's
    random seeds merge small separated clusters into large ones)."""
    n, dim = x.shape
    clusters = min(clusters, n)
    if clusters <= 1:
        return np.zeros(n, dtype=np.int64)
    train = x
    if n > TRAIN_PER_CLUSTER * clusters:
        train = x[np.sort(rng.choice(n, TRAIN_PER_CLUSTER * clusters, replace=False))]
    km = faiss.Kmeans(dim, clusters, niter=NITER, seed=int(rng.integers(2**31 - 1)))
    km.cp.min_points_per_centroid = 1  # few cells per cluster is allowed, and not a warning
    km.cp.max_points_per_centroid = TRAIN_PER_CLUSTER
    km.train(train, init_centroids=kmeans_plus_plus(train, clusters, rng))
    _, labels = km.index.search(x, 1)
    return np.asarray(labels[:, 0], dtype=np.int64)


def kmeans_plus_plus(
    x: NDArray[np.float32], clusters: int, rng: np.random.Generator
) -> NDArray[np.float32]:
    """k-means++ seeds (Arthur and Vassilvitskii 2007): each next seed drawn with probability
    proportional to its squared distance from the seeds before it."""
    x64 = x.astype(np.float64)
    seeds = [int(rng.integers(len(x)))]
    d2 = ((x64 - x64[seeds[0]]) ** 2).sum(axis=1)
    for _ in range(clusters - 1):
        total = d2.sum()
        nxt = int(rng.choice(len(x), p=d2 / total)) if total > 0 else int(rng.integers(len(x)))
        seeds.append(nxt)
        d2 = np.minimum(d2, ((x64 - x64[nxt]) ** 2).sum(axis=1))
    return np.ascontiguousarray(x[seeds], dtype=np.float32)


def cluster_balance(ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """K-means clusters, water-filled: rarest cluster first in each round, then by cluster id.

    Parameters (``--param``): ``clusters`` (k-means clusters, default 20; at most the pool).
    ``ctx.info``: ``clusters`` (pool and selected cells per cluster, rarest first).
    """
    clusters = int(number(ctx, "clusters", str(DEFAULT_CLUSTERS), integer=True))
    x = np.ascontiguousarray(ctx.embeddings, dtype=np.float32)
    labels = kmeans_labels(x, clusters, ctx.rng)
    _, codes = np.unique(labels, return_inverse=True)  # empty clusters dropped
    codes = codes.astype(np.int64)
    sizes = np.bincount(codes)
    cycle = sorted(range(len(sizes)), key=lambda c: (sizes[c], c))
    order = water_fill(codes, cycle, ctx.rng)[:budget]
    chosen = np.bincount(codes[order], minlength=len(sizes))
    ctx.info["clusters"] = [{"pool": int(sizes[c]), "selected": int(chosen[c])} for c in cycle]
    return order

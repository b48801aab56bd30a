"""Seeded synthetic embeddings for the benchmarks (never imported by the package)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def pca_like(
    rng: np.random.Generator, n: int, dim: int = 50, n_types: int = 300
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """A PCA-shaped embedding of ``n`` cells drawn from ``n_types`` Gaussian cell types.

    Component ``j`` has scale ``1 / sqrt(j + 1)``, as PCA variances fall off. Type sizes follow
    Dirichlet(0.3), so some types are rare; each type has its own spread (0.3 to 1.2).

    Parameters
    ----------
    rng
        The generator: the same seed and arguments give the same data.
    n
        Cells.
    dim
        Embedding dimensions.
    n_types
        Cell types drawn (a rare one may end up with no cell at small ``n``).

    Returns
    -------
    The (n, dim) C-contiguous float32 embedding and each cell's type label.
    """
    scale = 1.0 / np.sqrt(np.arange(1, dim + 1))
    centers = rng.normal(size=(n_types, dim)) * scale * 6
    p = rng.dirichlet(np.full(n_types, 0.3))
    lab = rng.choice(n_types, size=n, p=p)
    return (
        (
            centers[lab]
            + rng.normal(size=(n, dim)) * scale * rng.uniform(0.3, 1.2, n_types)[lab, None]
        ).astype(np.float32),
        lab,
    )


def make(
    n: int, seed: int = 0, dim: int = 50, n_types: int = 300
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """:func:`pca_like` from ``np.random.default_rng(seed)``."""
    return pca_like(np.random.default_rng(seed), n, dim=dim, n_types=n_types)

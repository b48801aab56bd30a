"""Farthest-first traversal (greedy k-center) over an embedding: the native kernel's wrapper."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from scurate import _core


def farthest_first(
    embeddings: NDArray[np.float32],
    budget: int,
    *,
    initial: NDArray[np.int64] | None = None,
    first: int = 0,
    covered: NDArray[np.float32] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Pick ``budget`` rows, each the farthest from all picked before (and from ``initial``,
    or from a reference corpus when ``covered`` is given).

    Parameters
    ----------
    embeddings
        (n_cells, n_dims) array; converted to C-contiguous float32 if it is not.
    budget
        Rows to pick.
    initial
        Rows already chosen: they count as covered and are never returned.
    first
        The first pick when ``initial`` is empty and no ``covered`` is given.
    covered
        Each row's distance to a reference corpus outside ``embeddings`` (inf for none): the
        traversal starts as if that corpus were already picked, so the first pick is the row
        farthest from it. Cannot be combined with ``initial``.

    Returns
    -------
    The picked rows in priority order, and the covering radius (largest distance of any row to
    its nearest pick) after each pick. The result is exact: it equals the plain O(n * budget)
    traversal, ties going to the lowest row.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if covered is not None:
        if initial is not None:
            msg = "farthest_first: give initial or covered, not both"
            raise ValueError(msg)
        return _core.kcenter_covered(x, np.ascontiguousarray(covered, dtype=np.float32), budget)
    seeds = None if initial is None else np.ascontiguousarray(initial, dtype=np.int64)
    return _core.kcenter(x, budget, initial=seeds, first=first)


def covering_radius(embeddings: NDArray[np.float32], selected: NDArray[np.int64]) -> float:
    """Largest distance of any row to its nearest selected row.

    Found as the distance of the next farthest-first pick after ``selected``, so it costs one
    pruned traversal rather than an all-pairs search.
    """
    n = int(embeddings.shape[0])
    if len(selected) >= n:
        return 0.0
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    nxt, _ = farthest_first(x, 1, initial=np.asarray(selected, dtype=np.int64))
    far = x[int(nxt[0])].astype(np.float64)
    d2 = ((x[np.asarray(selected)].astype(np.float64) - far) ** 2).sum(axis=1)
    return float(np.sqrt(d2.min()))

"""Water-filling over groups of cells, shared by ``reweight`` (cell types) and
``cluster-balance`` (k-means clusters).

Every group with fewer cells than an equal share of the budget is taken whole and the rest of
the budget is split equally over the other groups; inside a group the cells are a seeded random
sample. The order cycles over the groups in a given order, one cell of each group that has
cells left per round, so every prefix is itself the water-filled selection of its size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def water_fill(
    codes: NDArray[np.int64], cycle: Sequence[int], rng: np.random.Generator
) -> NDArray[np.int64]:
    """Every row, ordered round by round: each round takes the next random row of every group
    that still has one, the groups in ``cycle`` order (``cycle`` lists every group code)."""
    n, n_groups = len(codes), len(cycle)
    sizes = np.bincount(codes, minlength=n_groups)
    position = np.empty(n_groups, dtype=np.int64)
    position[np.asarray(cycle, dtype=np.int64)] = np.arange(n_groups)
    shuffled = rng.permutation(n)
    by_group = shuffled[np.argsort(codes[shuffled], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    round_of = np.empty(n, dtype=np.int64)
    round_of[by_group] = np.arange(n) - starts[codes[by_group]]
    return np.lexsort((position[codes], round_of)).astype(np.int64)

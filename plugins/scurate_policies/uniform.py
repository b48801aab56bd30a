"""Uniformly random cells: the baseline every other policy must beat."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scurate import SelectionContext


def uniform(ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """A seeded permutation of the pool cut at the budget, so every prefix is also uniform."""
    return ctx.rng.permutation(ctx.n_cells)[:budget].astype(np.int64)

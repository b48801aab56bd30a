"""Greedy k-center: each pick is the cell farthest from every cell picked before it."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scurate import OptionError, SelectionContext, farthest_first


def kcenter(ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """Farthest-first traversal from a seeded first cell; records the covering radius.

    Parameters (``--param``): ``first=random`` (default) starts from a random cell,
    ``first=central`` from the cell nearest the mean, so the first pick depends on no seed.
    With a reference corpus (``ctx.covered``), the corpus counts as already picked: the first
    pick is the cell farthest from it, and ``first`` does not apply.
    """
    if ctx.covered is not None:
        order, radii = farthest_first(ctx.embeddings, budget, covered=ctx.covered)
        ctx.info["covering_radius"] = radii.tolist()
        ctx.info["starts_from"] = "the reference corpus"
        return order
    how = ctx.param("first", "random")
    if how == "random":
        first = int(ctx.rng.integers(ctx.n_cells))
    elif how == "central":
        centroid = ctx.embeddings.mean(axis=0, dtype=np.float64)
        first = int(np.argmin(((ctx.embeddings - centroid) ** 2).sum(axis=1)))
    else:
        msg = f"params['first']={how!r}: expected 'random' or 'central'"
        raise OptionError(msg)
    order, radii = farthest_first(ctx.embeddings, budget, first=first)
    ctx.info["covering_radius"] = radii.tolist()
    return order

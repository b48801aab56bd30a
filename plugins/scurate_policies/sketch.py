"""Geometric sketching: one cell per box of a plaid grid over the embedding, as geosketch.

The grid (native, :func:`scurate.plugin.grid_covering`) cuts each axis into intervals of one
side, skipping empty stretches, with the side bisected until about ``boxes`` boxes are not
empty. The order visits the boxes in a seeded random order, one random cell from each, and
cycles again over the boxes that still have cells, so dense regions get no more than sparse
ones until the sparse ones run out. Prefix-ordered for a fixed grid: the first ``m`` cells of
a run with budget ``B`` equal the run with budget ``m`` and ``--param boxes=B`` (by default the
grid has about ``budget`` boxes, so it changes with the budget).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scurate import OptionError, SelectionContext
from scurate.plugin import grid_covering

ALPHA = 0.1  # the number of boxes lands within 10 % of the target, as geosketch's default


def order_by_boxes(box: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.int64]:
    """Every row, ordered round by round: each round takes one random row of every box that
    still has one, the boxes in one seeded random order."""
    n = len(box)
    n_boxes = int(box.max()) + 1 if n else 0
    box_rank = rng.permutation(n_boxes)[box]
    shuffled = rng.permutation(n)
    # rows of each box in shuffled order: their round is their position within the box
    by_box = shuffled[np.argsort(box[shuffled], kind="stable")]
    starts = np.searchsorted(box[by_box], np.arange(n_boxes))
    round_of = np.empty(n, dtype=np.int64)
    round_of[by_box] = np.arange(n) - starts[box[by_box]]
    return np.lexsort((box_rank, round_of)).astype(np.int64)


def sketch(ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """Plaid-covering geometric sketch. ``--param boxes=N`` fixes the grid (default: about
    ``budget`` boxes). ``ctx.info``: ``boxes`` (non-empty boxes), ``box_side``."""
    text = ctx.param("boxes", str(budget))
    try:
        target = int(text)
    except ValueError:
        target = 0
    if target < 1:
        msg = f"params['boxes']={text!r}: expected a positive integer"
        raise OptionError(msg)
    box, n_boxes, side = grid_covering(ctx.embeddings, target, alpha=ALPHA)
    ctx.info.update(boxes=int(n_boxes), box_side=float(side))
    return order_by_boxes(box, ctx.rng)[:budget]

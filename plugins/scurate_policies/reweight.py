"""Cell-type re-weighting (DenAdel et al. 2026): equal shares per cell type, water-filled.

Every type with fewer cells than an equal share of the budget is taken whole and the rest of
the budget is split equally over the other types; inside a type the cells are a seeded random
sample. The order cycles over the types, rarest first (then by name), one cell of each type
that has cells left per round, so every prefix is itself the water-filled selection of its
size: the first ``m`` cells of a run with budget ``B`` are the run with budget ``m``. Cells
whose label is null form one more type.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scurate import OptionError, SelectionContext


def reweight(ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """``--param label=COL`` names the manifest column of types (default ``cell_type``).
    ``ctx.info``: ``label``, ``types`` (pool and selected cells per type)."""
    column = ctx.param("label", "cell_type")
    if column not in ctx.manifest.columns:
        msg = f"params['label']={column!r}: not a manifest column"
        raise OptionError(msg)
    labels = ctx.manifest[column].cast(pl.String)
    if labels.null_count() == ctx.manifest.height:
        msg = (
            f"params['label']={column!r}: the manifest column is empty (no harmonizer filled it); "
            "name a filled column, e.g. params['label']='dataset_id'"
        )
        raise OptionError(msg)
    codes, names = _codes(labels)
    sizes = np.bincount(codes, minlength=len(names))
    # types rarest first, then by name (null last): the cycle order
    cycle = sorted(range(len(names)), key=lambda t: (sizes[t], names[t] is None, names[t] or ""))
    position = np.empty(len(names), dtype=np.int64)
    position[cycle] = np.arange(len(names))
    shuffled = ctx.rng.permutation(ctx.n_cells)
    by_type = shuffled[np.argsort(codes[shuffled], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    round_of = np.empty(ctx.n_cells, dtype=np.int64)
    round_of[by_type] = np.arange(ctx.n_cells) - starts[codes[by_type]]
    order = np.lexsort((position[codes], round_of))[:budget].astype(np.int64)
    chosen = np.bincount(codes[order], minlength=len(names))
    ctx.info.update(
        label=column,
        types=[
            {"type": names[t], "pool": int(sizes[t]), "selected": int(chosen[t])} for t in cycle
        ],
    )
    return order


def _codes(labels: pl.Series) -> tuple[NDArray[np.int64], list[str | None]]:
    names: list[str | None] = sorted({v for v in labels.to_list() if v is not None})
    if labels.null_count():
        names.append(None)
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[v] for v in labels.to_list()], dtype=np.int64), names

"""Cell-type re-weighting (DenAdel et al. 2026): equal shares per cell type, water-filled.

Every type with fewer cells than an equal share of the budget is taken whole and the rest of
the budget is split equally over the other types; inside a type the cells are a seeded random
sample (:func:`.balance.water_fill`). The order cycles over the types, rarest first (then by
name), so every prefix is itself the water-filled selection of its size: the first ``m`` cells
of a run with budget ``B`` are the run with budget ``m``. Cells whose label is null form one
more type.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scurate import OptionError, SelectionContext

from .balance import water_fill


def reweight(ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """``--param label=COL`` names the column of types (default ``cell_type``): a manifest
    column, or an obs column of the sources where the manifest has none filled.
    ``ctx.info``: ``label``, ``types`` (pool and selected cells per type)."""
    column = ctx.param("label", "cell_type")
    values = ctx.column(column)
    if values is None:
        msg = f"params['label']={column!r}: not a manifest column nor an obs column"
        raise OptionError(msg)
    labels = values.cast(pl.String)
    if labels.null_count() == ctx.manifest.height:
        msg = (
            f"params['label']={column!r}: the manifest column is empty (no harmonizer filled it) "
            "and no source has it in obs; name a filled column, e.g. params['label']='dataset_id'"
        )
        raise OptionError(msg)
    codes, names = _codes(labels)
    sizes = np.bincount(codes, minlength=len(names))
    # types rarest first, then by name (null last): the cycle order
    cycle = sorted(range(len(names)), key=lambda t: (sizes[t], names[t] is None, names[t] or ""))
    order = water_fill(codes, cycle, ctx.rng)[:budget]
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

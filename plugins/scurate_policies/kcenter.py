"""Greedy k-center: each pick is the cell farthest from every cell picked before it; and its
density-weighted variant, where a cell's distance to the picks counts in proportion to its
neighbourhood density, so that lone outliers stop winning."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scurate import OptionError, SelectionContext, farthest_first

from .params import non_negative

DENSITY_K = 15  # neighbours for the density when the manifest has none
DEFAULT_EXPONENT = 0.5  # Baron, each donor held out: 1 and 2 won macro-F1 less often


def first_pick(ctx: SelectionContext) -> int:
    """``--param first``: ``random`` (default, seeded) or ``central`` (nearest the mean)."""
    how = ctx.param("first", "random")
    if how == "random":
        return int(ctx.rng.integers(ctx.n_cells))
    if how == "central":
        centroid = ctx.embeddings.mean(axis=0, dtype=np.float64)
        return int(np.argmin(((ctx.embeddings - centroid) ** 2).sum(axis=1)))
    msg = f"params['first']={how!r}: expected 'random' or 'central'"
    raise OptionError(msg)


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
    order, radii = farthest_first(ctx.embeddings, budget, first=first_pick(ctx))
    ctx.info["covering_radius"] = radii.tolist()
    return order


def manifest_density(ctx: SelectionContext) -> NDArray[np.float32] | None:
    """The manifest's ``density`` column where every cell has one (only that column read: the
    whole manifest is a gigabyte at ten million cells), else None."""
    column = ctx.column("density")
    if column is None or not column.dtype.is_numeric() or column.null_count():
        return None
    return column.to_numpy().astype(np.float32)


def density(ctx: SelectionContext) -> NDArray[np.float32]:
    """Each cell's neighbourhood density: the manifest's ``density`` column where filled (the
    median over the pool of the mean distance to the nearest neighbours, over the cell's own),
    else the same ratio from :meth:`SelectionContext.neighbors`. Missing values: the median."""
    return density_from(ctx)[0]


def density_from(ctx: SelectionContext) -> tuple[NDArray[np.float32], str]:
    """:func:`density`, and where it came from: ``manifest`` or ``neighbors``."""
    values = manifest_density(ctx)
    source = "manifest"
    if values is None:
        source = "neighbors"
        k = min(DENSITY_K, ctx.n_cells - 1)
        if k < 1:
            return np.ones(ctx.n_cells, dtype=np.float32), source
        dist, _ = ctx.neighbors(np.arange(ctx.n_cells, dtype=np.int64), k + 1)
        mean = dist[:, 1:].astype(np.float64).mean(axis=1)
        floor = max(float(np.median(mean)) * 1e-3, 1e-12)
        values = (np.median(mean) / np.maximum(mean, floor)).astype(np.float32)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        values[bad] = np.median(values[~bad]) if (~bad).any() else 1.0
    return values, source


def kcenter_density(ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """Farthest-first traversal where each pick maximizes ``density ** exponent * distance``.

    Parameters (``--param``): ``exponent`` (default 0.5; 0 is plain ``kcenter``), ``first`` as
    ``kcenter``. ``ctx.info``: ``exponent``, ``weighted_radius`` (the largest weighted
    distance left after the last pick), ``density_from`` (``manifest`` or ``neighbors``).
    Not with a reference corpus (``--reference``): use ``kcenter`` there.
    """
    exponent = non_negative(ctx, "exponent", str(DEFAULT_EXPONENT))
    if ctx.covered is not None:
        msg = "policy 'kcenter-density' does not take --reference; use 'kcenter'"
        raise OptionError(msg)
    values, source = density_from(ctx)
    weights = values.astype(np.float64) ** exponent
    order, radii = farthest_first(
        ctx.embeddings, budget, first=first_pick(ctx), weights=weights.astype(np.float32)
    )
    ctx.info.update(
        exponent=exponent,
        weighted_radius=float(radii[-1]) if budget else None,
        density_from=source,
    )
    return order

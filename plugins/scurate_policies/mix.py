"""Representatives and gaps in turn: facility location's picks interleaved with those of a
density-weighted farthest-first traversal.

Facility location (``facility``) spends its picks on the centres of dense regions: at small
budgets, where each pick covers only its own neighbourhood, it leaves whole cell types out.
Density-weighted farthest-first (``kcenter-density``) reaches every separate group early but
keeps spending picks far from most cells, so the mean distance from a held-out cell to the
selection is often worse than random's. Taking the two in turn keeps both: on Baron with
either donor held out it beat random on macro-F1 at every budget from 1 % to 25 %, and it never
lost on the mean distance (benchmarks/README.md, "Choosing select's default policy").

The traversal runs over a seeded uniform sample of at most ``far_sample`` cells (all of a pool
that size or smaller): at ten million cells a traversal of every cell takes twenty minutes and
reads the embedding at random, while any group of cells that holds a 1/``far_sample`` share of
the pool is in the sample. The traversal is read only as deep as it has turns (half the
budget by default: it costs in proportion to sample x picks where its pruning fails, as on a
noisy PCA of counts), and no deeper than an eighth of its sample (:data:`DEPTH_DIVISOR`); its
turns past that are facility location's. Both lists are prefix-ordered and neither's prefix
depends on the budget, so their interleaving is prefix-ordered too.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scurate import OptionError, SelectionContext, farthest_first

from .facility import FacilityProblem, facility_picks, objective_of
from .kcenter import DEFAULT_EXPONENT, density_from
from .params import non_negative, number

DEFAULT_SHARE = 0.5  # of the turns, those of the traversal
DEFAULT_FAR_SAMPLE = 100_000
# the traversal is read at most 1/DEPTH_DIVISOR of its sample deep; its later turns are
# facility location's. On a noisy 50-d PCA of a million cells of counts its weighted radius
# fell only from 7.4 to 7.0 between 12,500 and 25,000 picks of a 100,000-cell sample (the
# median distance from a sample cell to its nearest other is 5.8): those picks barely narrowed
# any gap, at 0.8 ms each. Where the sample is every cell the cap changes no budget under a
# quarter of them (the protocol's largest), which gives the traversal an eighth.
DEPTH_DIVISOR = 8
# facility location is asked for picks beyond its own turns, this share of the traversal's
# rows: a traversal row facility picks too gives its turn back (see facility_density)
OVERLAP_SHARE = 0.25


def far_sample(ctx: SelectionContext) -> NDArray[np.int64] | None:
    """The cells the traversal runs over (ascending), or None for every cell: ``--param
    far_sample`` (a count, or ``all``)."""
    text = ctx.param("far_sample", str(DEFAULT_FAR_SAMPLE))
    if text == "all":
        return None
    size = int(number(ctx, "far_sample", str(DEFAULT_FAR_SAMPLE), integer=True))
    if size >= ctx.n_cells:
        return None
    return np.sort(ctx.rng.choice(ctx.n_cells, size, replace=False)).astype(np.int64)


def traversal(ctx: SelectionContext, picks: int) -> NDArray[np.int64]:
    """``picks`` pool rows of the density-weighted farthest-first traversal over the sample,
    from a seeded first cell of it; fewer where that is more than an eighth of the sample
    (:data:`DEPTH_DIVISOR`)."""
    exponent = non_negative(ctx, "exponent", str(DEFAULT_EXPONENT))
    rows = far_sample(ctx)
    values, source = density_from(ctx)
    weights = values.astype(np.float64) ** exponent
    points = ctx.embeddings if rows is None else ctx.embedding_rows(rows)
    if rows is not None:
        weights = weights[rows]
    picks = min(picks, len(points) // DEPTH_DIVISOR)
    first = int(ctx.rng.integers(len(points)))
    order, radii = farthest_first(points, picks, first=first, weights=weights.astype(np.float32))
    ctx.info.update(
        exponent=exponent,
        far_sample=len(points),
        far_picks=picks,
        weighted_radius=float(radii[-1]) if picks else None,
        density_from=source,
    )
    return order if rows is None else rows[order]


def interleave(
    first: NDArray[np.int64], second: NDArray[np.int64], share: float, budget: int
) -> NDArray[np.int64]:
    """``budget`` distinct rows: turn ``t`` is ``second``'s where ``floor((t + 1) * share)``
    steps up, else ``first``'s; a turn of ``second`` whose row is taken already goes to
    ``first``, and ``first`` passes over rows taken. ``second`` is read at most
    ``floor(budget * share)`` rows deep, ``first`` at most ``budget``."""
    taken: set[int] = set()
    out = np.empty(budget, dtype=np.int64)
    i = j = 0
    for t in range(budget):
        if int((t + 1) * share) > int(t * share) and j < len(second):
            row = int(second[j])
            j += 1
            if row not in taken:
                taken.add(row)
                out[t] = row
                continue
        while i < len(first) and int(first[i]) in taken:
            i += 1
        if i == len(first):
            msg = f"interleave: {t} distinct rows for a budget of {budget}"
            raise ValueError(msg)
        row = int(first[i])
        taken.add(row)
        out[t] = row
        i += 1
    return out


def facility_density(ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """Facility location and a density-weighted farthest-first traversal, their picks taken in
    turn (see the module doc).

    Parameters (``--param``): ``share`` (of the turns, those of the traversal; default 0.5,
    0 is ``facility``), ``far_sample`` (cells the traversal runs over, default 100,000;
    ``all``), ``exponent`` (the traversal's density exponent, as ``kcenter-density``), and
    ``facility``'s ``k``, ``sigma``, ``sample``. ``ctx.info``: ``objective_curve`` (facility
    location's objective after each pick of this order; ``objective`` its last value,
    ``objective_max`` its ceiling), ``k``, ``sigma``, ``sample``, and the traversal's
    ``exponent``, ``far_sample``, ``far_picks`` (its depth), ``weighted_radius``,
    ``density_from``; ``facility_picks`` (facility location's run, see :data:`OVERLAP_SHARE`).
    With a reference corpus (``--reference``), ``facility``'s picks alone, the corpus counted as
    picked (a density-weighted traversal cannot start from it); ``ctx.info["traversal"]`` says so.
    """
    share = non_negative(ctx, "share", str(DEFAULT_SHARE))  # 1: the traversal, then facility
    if share > 1:
        msg = f"params['share']={share:g}: expected a fraction between 0 and 1"
        raise OptionError(msg)
    # facility's seed first (one rng stream, as before); its graph is built at its first use,
    # after the traversal, which then runs without it held (at 10M cells, 1.3 GB)
    problem = FacilityProblem(ctx)
    if ctx.covered is not None:
        representatives, objective = facility_picks(ctx, problem, budget)
        ctx.info["traversal"] = "none: with --reference, facility's picks alone"
        ctx.info["objective_curve"] = objective.tolist()
        return representatives
    far_turns = int(budget * share)  # the traversal's turns: it is read no deeper
    gaps = traversal(ctx, far_turns) if far_turns else np.empty(0, np.int64)
    # facility's picks past budget - len(gaps) serve only turns whose traversal row facility
    # took first; its greedy costs in proportion to its picks, and a shorter run is a prefix
    # of the longer one, so ask for a few more than that and for every turn only if short
    enough = min(budget, budget - len(gaps) + int(len(gaps) * OVERLAP_SHARE))
    representatives, _ = facility_picks(ctx, problem, enough)
    try:
        order = interleave(representatives, gaps, share, budget)
    except ValueError:
        representatives, _ = facility_picks(ctx, problem, budget)
        order = interleave(representatives, gaps, share, budget)
    ctx.info["facility_picks"] = len(representatives)
    # the report's curve: facility location's objective after each pick of this order
    curve = objective_of(problem.graph, order)
    ctx.info.update(objective=float(curve[-1]) if budget else 0.0, objective_curve=curve.tolist())
    return order

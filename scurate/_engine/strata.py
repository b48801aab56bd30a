"""Quotas over metadata strata: ``--strata COL[,COL...] --quota proportional|equal|min:N``.

The budget is divided over the strata (the distinct value combinations of the columns), the
policy runs inside each stratum on its own sub-context, and the strata's orders are merged so
that every prefix of the selection holds each stratum's quota in proportion, within one cell:
after ``k`` picks, stratum ``s`` with quota ``q_s`` of a budget ``B`` has between
``k * q_s / B - 1`` and ``k * q_s / B + 1`` cells (Tijdeman's chairman-assignment sequence).

Missing values (null) form a stratum of their own, shown as ``null`` in the report.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._engine.context import SelectionContext, run_policy
from scurate._engine.options import Quota, check_budget
from scurate._plugins.registry import Registered
from scurate.errors import OptionError

log = logging.getLogger(__name__)


# A reader of one source's obs column by name: the values as strings (None where missing), or
# None when that source has no such column. Used only for the fallback below.
def stratum_columns(
    manifest: pl.DataFrame,
    columns: Sequence[str],
    obs: Callable[[str], pl.Series | None] | None = None,
) -> pl.DataFrame:
    """The ``columns`` as strings, one row per cell of ``manifest``.

    A manifest column is used where any cell has a value; otherwise (a name the manifest does
    not have, or a column no harmonizer filled) the sources' obs column of that name, read by
    ``obs`` for the manifest's own cells (see :func:`scurate._engine.context.obs_reader`);
    cells of sources without it stay null. A name found nowhere, or empty for every cell, is
    one line.
    """
    out = {}
    for name in columns:
        column = manifest[name] if name in manifest.columns else None
        if (column is None or column.null_count() == manifest.height) and obs is not None:
            found = obs(name)
            if found is not None:
                log.info("strata %s: read from the sources' obs", name)
                column = found
        if column is None:
            msg = (
                f"strata={name!r}: not a manifest column, nor an obs column of any source "
                "(manifest columns: " + ", ".join(manifest.columns) + ")"
            )
            raise OptionError(msg)
        if column.null_count() == manifest.height:
            msg = (
                f"strata={name!r}: the column is empty for every cell (no harmonizer filled "
                "it and no source has an obs column of that name)"
            )
            raise OptionError(msg)
        out[name] = column.cast(pl.String)
    return pl.DataFrame(out)


@dataclass
class Strata:
    """The pool split into strata: ``codes[i]`` is cell ``i``'s stratum, ``keys[s]`` its values."""

    columns: list[str]
    keys: list[dict[str, str | None]]
    codes: NDArray[np.int64]

    @property
    def sizes(self) -> NDArray[np.int64]:
        return np.bincount(self.codes, minlength=len(self.keys)).astype(np.int64)

    def members(self, s: int) -> NDArray[np.int64]:
        return np.flatnonzero(self.codes == s).astype(np.int64)


NULL = "\x00null"  # stands for a missing value while strata are matched (never a label)


def split(values: pl.DataFrame) -> Strata:
    """Strata in sorted order of their values (nulls last), so the split is deterministic."""
    columns = list(values.columns)
    filled = values.with_columns(pl.col(c).fill_null(NULL) for c in columns)
    keys_frame = values.unique().sort(columns, nulls_last=True).with_row_index("__stratum")
    lookup = keys_frame.with_columns(pl.col(c).fill_null(NULL) for c in columns)
    joined = filled.with_row_index("__row").join(lookup, on=columns, how="left").sort("__row")
    codes = joined["__stratum"].to_numpy().astype(np.int64)
    keys = keys_frame.drop("__stratum").to_dicts()
    return Strata(columns, keys, codes)


def allocate(
    sizes: Sequence[int] | NDArray[np.int64], budget: int, quota: Quota
) -> NDArray[np.int64]:
    """Cells per stratum: at most its size, summing to ``budget`` (at most the pool).

    ``proportional``: shares proportional to size, rounded by largest remainder.
    ``equal``: water-filling: a stratum smaller than an equal share is taken whole and the rest
    is split equally over the others, until the budget is spent.
    ``min:N``: every stratum ``min(N, size)`` first, then the rest proportionally to what each
    has left. When the minimums alone exceed the budget, that is an error.
    Ties in rounding go to the larger stratum, then to the earlier one.
    """
    size = np.asarray(sizes, dtype=np.int64)
    pool = int(size.sum())
    check_budget(budget, pool)
    if quota.kind == "proportional":
        return _proportional(size, budget)
    if quota.kind == "equal":
        return _water_fill(size, budget)
    floor = np.minimum(size, quota.minimum)
    if floor.sum() > budget:
        msg = (
            f"quota='{quota}': the {len(size)} strata need {int(floor.sum())} cells, more "
            f"than the budget of {budget}"
        )
        raise OptionError(msg)
    return floor + _proportional(size - floor, budget - int(floor.sum()))


def _proportional(size: NDArray[np.int64], budget: int) -> NDArray[np.int64]:
    pool = int(size.sum())
    if budget == 0 or pool == 0:
        return np.zeros_like(size)
    exact = size * budget  # shares are exact / pool; integer arithmetic throughout
    share = exact // pool
    remainder = exact - share * pool
    left = budget - int(share.sum())
    # largest remainder first, then larger stratum, then earlier; never above a stratum's size
    rank = sorted(range(len(size)), key=lambda s: (-remainder[s], -size[s], s))
    for s in rank:
        if left == 0:
            break
        if share[s] < size[s]:
            share[s] += 1
            left -= 1
    return share


def _water_fill(size: NDArray[np.int64], budget: int) -> NDArray[np.int64]:
    share = np.zeros_like(size)
    left = budget
    open_ = [s for s in range(len(size)) if size[s] > 0]
    while left > 0 and open_:
        each = left // len(open_)
        small = [s for s in open_ if size[s] - share[s] <= each]
        if small:  # these fit whole: take them, and share again what is left
            for s in small:
                left -= int(size[s] - share[s])
                share[s] = size[s]
            open_ = [s for s in open_ if s not in small]
            continue
        for s in open_:
            share[s] += each
        left -= each * len(open_)
        # the last cells, one each, to the larger strata first (then the earlier)
        for s in sorted(open_, key=lambda s: (-size[s], s))[:left]:
            share[s] += 1
        left = 0
    return share


def interleave(quotas: Sequence[int] | NDArray[np.int64]) -> NDArray[np.int64]:
    """The stratum of each rank: a sequence in which stratum ``s`` appears ``quotas[s]`` times and
    every prefix of length ``k`` holds it ``k * quotas[s] / sum(quotas)`` times, within one.

    Tijdeman's chairman assignment (1980): at rank ``k``, among the strata that may take a cell
    without getting more than ``1 - 1/(2S - 2)`` ahead of their share, take the one whose
    deadline (the rank at which it would fall that far behind) comes first; ties go to the
    earlier stratum. Exact rational arithmetic, ``O(B log S)``.
    """
    q = [int(v) for v in quotas]
    total = sum(q)
    active = [s for s in range(len(q)) if q[s] > 0]
    if len(active) <= 1:
        return np.full(total, active[0] if active else 0, dtype=np.int64)
    sigma = 1 - Fraction(1, 2 * len(active) - 2)
    count = dict.fromkeys(active, 0)

    def release(s: int) -> Fraction:  # first rank k with k*q/B - n >= 1 - sigma
        return (count[s] + 1 - sigma) * total / q[s]

    def deadline(s: int) -> Fraction:  # rank at which it would be sigma behind
        return (count[s] + sigma) * total / q[s]

    waiting = [(release(s), s) for s in active]
    heapq.heapify(waiting)
    ready: list[tuple[Fraction, int]] = []
    out = np.empty(total, dtype=np.int64)
    for k in range(1, total + 1):
        while waiting and waiting[0][0] <= k:
            _, s = heapq.heappop(waiting)
            heapq.heappush(ready, (deadline(s), s))
        if not ready:  # cannot happen (Tijdeman's theorem); kept so a bug cannot hang
            _, s = heapq.heappop(waiting)
        else:
            _, s = heapq.heappop(ready)
        out[k - 1] = s
        count[s] += 1
        if count[s] < q[s]:
            heapq.heappush(waiting, (release(s), s))
    return out


def merge(orders: Sequence[NDArray[np.int64]]) -> NDArray[np.int64]:
    """The strata's own orders (global rows) merged by :func:`interleave`."""
    sequence = interleave([len(o) for o in orders])
    out = np.empty(len(sequence), dtype=np.int64)
    taken = np.zeros(len(orders), dtype=np.int64)
    for rank, s in enumerate(sequence):
        out[rank] = orders[s][taken[s]]
        taken[s] += 1
    return out


def summary(strata: Strata, quotas: NDArray[np.int64], quota: Quota) -> dict[str, Any]:
    """What the report says about the strata."""
    sizes = strata.sizes
    return {
        "columns": strata.columns,
        "quota": str(quota),
        "strata": [
            {"values": key, "pool": int(sizes[s]), "selected": int(quotas[s])}
            for s, key in enumerate(strata.keys)
        ],
    }


def _rows_of(
    obs: Callable[[str], pl.Series | None] | None, rows: NDArray[np.int64]
) -> Callable[[str], pl.Series | None] | None:
    """A context's obs reader cut to a stratum's ``rows``."""
    if obs is None:
        return None
    whole = obs

    def read(name: str) -> pl.Series | None:
        found = whole(name)
        return None if found is None else found.gather(rows)

    return read


def run_stratified(
    policy: Registered,
    ctx: SelectionContext,
    budget: int,
    *,
    columns: Sequence[str],
    quota: Quota,
) -> NDArray[np.int64]:
    """Run ``policy`` inside each stratum on its quota and merge the orders by :func:`merge`.
    The stratum columns come from the manifest, else from the sources' obs through ``ctx.obs``.

    Each stratum gets a sub-context: its rows of the embeddings and manifest, the same
    parameters, and a generator seeded from ``ctx.rng`` (one draw per stratum, in stratum
    order, whatever the quotas). ``ctx.info["strata"]`` records pool and quota per stratum.
    """
    strata = split(stratum_columns(ctx.manifest, columns, ctx.obs))
    quotas = allocate(strata.sizes, budget, quota)
    seeds = ctx.rng.integers(2**63 - 1, size=len(strata.keys))
    orders: list[NDArray[np.int64]] = []
    for s in range(len(strata.keys)):
        rows = strata.members(s)
        if quotas[s] == 0:
            orders.append(np.empty(0, dtype=np.int64))
            continue
        sub = SelectionContext(
            np.ascontiguousarray(ctx.embeddings[rows]),
            ctx.manifest[rows],
            np.random.default_rng(int(seeds[s])),
            params=ctx.params,  # shared: what any stratum's run reads counts as read
            covered=None if ctx.covered is None else ctx.covered[rows],
            obs=_rows_of(ctx.obs, rows),
            graph=None if ctx.graph is None else ctx.graph.restricted(rows),
        )
        local = run_policy(policy, sub, int(quotas[s]))
        orders.append(rows[local])
    ctx.info["strata"] = summary(strata, quotas, quota)
    return merge(orders)

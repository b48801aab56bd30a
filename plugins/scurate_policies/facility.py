"""Facility location: representative cells, by lazy greedy over a sparse kNN similarity graph.

The objective is ``F(S) = sum_i max_{j in S} sim(i, j)`` over every pool cell ``i``, where
``sim(i, j) = exp(-(d(i, j) / sigma) ** 2)`` for ``j`` among the ``k`` nearest neighbours of
``i`` (FAISS, see :meth:`scurate.SelectionContext.neighbors`), ``sim(i, i) = 1`` and 0 for
every other pair. No n x n matrix is built: the graph has ``n * (k + 1)`` entries. ``F`` is at
most the number of cells (every cell selected).

The greedy is stochastic (Mirzasoleiman et al. 2015, "Lazier than lazy greedy"): each pick is
the best of ``sample`` candidates drawn from the cells not yet picked, a number that does not
depend on the budget, so picks are prefix-ordered (the first ``m`` of a run with budget ``B``
are the run with budget ``m``) and seeds give measurably different selections. ``sample=all``
(or a sample at least the pool) is the exact lazy greedy, the same for every seed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scurate import SelectionContext, farthest_first
from scurate.plugin import ArrayBuilder, blocks, covering_graph, greedy_facility_location

from .params import non_negative, number

DEFAULT_K = 15
DEFAULT_SWITCH = 0.1  # facility-kcenter: a gain below a tenth of the first ends the facility phase
SIM_CHUNK = 65_536  # cells whose similarities are computed at a time
DEFAULT_SAMPLE = 2048  # objective within 1 % of the exact greedy (README, policies)
OBJECTIVE_BLOCK = 8192  # picks whose entries objective_of sorts together


def knn_similarity(
    ctx: SelectionContext, k: int, sigma: float | None = None
) -> tuple[sp.csr_matrix, float]:
    """The sparse similarity graph by candidate (row ``j`` lists the cells ``j`` covers), and
    the ``sigma`` used (by default the median distance of a cell to its ``k``-th neighbour)."""
    n = ctx.n_cells
    k = min(k, n - 1)
    if k == 0:
        return sp.identity(n, dtype=np.float32, format="csr"), 1.0
    # from scoring's search where it reaches k; -1 where a listed neighbour is set aside
    # (on disk where they are large: read a block at a time, see scurate.plugin.blocks)
    dist, rows = ctx.neighbor_graph(k, dtype=np.int32)
    short = 0
    kth = np.empty(n, dtype=np.float32)
    for start, block in blocks(rows, SIM_CHUNK):
        short += int(((block >= 0).sum(axis=1) < k).sum())  # neighbours set aside
        listed = np.where(block >= 0, dist[start : start + len(block)], -np.inf)
        kth[start : start + len(block)] = listed.max(axis=1)
    ctx.info["short_lists"] = short
    if sigma is None:
        positive = kth[np.isfinite(kth) & (kth > 0)]
        sigma = float(np.median(positive)) if positive.size else 1.0
        del positive
    del kth
    sim = ArrayBuilder(dist.shape, np.float32)
    for start, part in blocks(dist, SIM_CHUNK):  # float64 temporaries a chunk at a time
        sim.put(start, np.exp(-((part.astype(np.float64) / sigma) ** 2)))
    del dist  # inf past a list's end gives 0, an entry covering_graph skips anyway
    # row j of the graph lists the cells j covers, in increasing order: cell i under itself
    # (sim 1) and under each of its neighbours j (native: two passes, no sort, int32 indices)
    indptr, indices, data = covering_graph(rows, sim.done())
    del rows, sim
    if indptr[-1] < np.iinfo(np.int32).max:  # else scipy would copy the indices to int64
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=(n, n), copy=False), sigma


def sample_size(ctx: SelectionContext) -> int | None:
    """``--param sample``: candidates per pick (None for ``all``: the exact greedy). The
    default, 2048 or half the pool where that is fewer, keeps a seeded spread on small pools."""
    default = max(1, min(DEFAULT_SAMPLE, ctx.n_cells // 2))
    text = ctx.param("sample", str(default))
    if text == "all":
        return None
    size = int(number(ctx, "sample", str(default), integer=True))
    return None if size >= ctx.n_cells else size


def run_facility(
    ctx: SelectionContext, budget: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Facility location's picks and the objective after each; reads ``k``, ``sigma`` and
    ``sample`` and leaves them, with the objective, in ``ctx.info``."""
    order, objective, _ = facility_run(ctx, budget)
    return order, objective


def facility_run(
    ctx: SelectionContext, budget: int
) -> tuple[NDArray[np.int64], NDArray[np.float64], sp.csr_matrix]:
    """:func:`run_facility`, and the similarity graph it ran on (by candidate), for a policy
    that scores another order on the same objective (:func:`objective_of`)."""
    problem = FacilityProblem(ctx)
    order, objective = facility_picks(ctx, problem, budget)
    return order, objective, problem.graph


class FacilityProblem:
    """Facility location's settings (``k``, ``sigma``, ``sample``) and seed, read from ``ctx``
    and drawn from ``ctx.rng`` when made; its similarity graph (by candidate) is built at first
    use (:attr:`graph`). A policy may run other steps on ``ctx.rng`` in between, without the
    graph held, and ask :func:`facility_picks` for as many picks as it turns out to need."""

    def __init__(self, ctx: SelectionContext) -> None:
        self.k = int(number(ctx, "k", str(DEFAULT_K), integer=True))
        self._asked = number(ctx, "sigma", "1", integer=False) if "sigma" in ctx.params else None
        self.sample = sample_size(ctx)
        self.seed = int(ctx.rng.integers(2**63))  # drawn even for the exact greedy: one stream
        self._ctx = ctx
        self._graph: sp.csr_matrix | None = None
        self.sigma = 0.0  # the kernel's length scale, once the graph is built
        self.ceiling = float(ctx.n_cells)  # F with every cell selected

    @property
    def graph(self) -> sp.csr_matrix:
        if self._graph is None:
            ctx = self._ctx
            graph, self.sigma = knn_similarity(ctx, self.k, self._asked)
            if ctx.covered is not None:
                graph = _beyond_reference(graph, ctx.covered, self.sigma)
                # each cell: 1 - c_i
                self.ceiling = float(graph.max(axis=0).toarray().sum(dtype=np.float64))
                ctx.info["starts_from"] = "the reference corpus"
            self._graph = graph
        return self._graph


def facility_picks(
    ctx: SelectionContext, problem: FacilityProblem, picks: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The greedy's first ``picks`` and the objective after each (a prefix of any longer run
    on the same problem); leaves the settings and the objective in ``ctx.info``."""
    graph = problem.graph
    order, objective = greedy_facility_location(
        graph.indptr,
        graph.indices,
        graph.data,
        picks,
        sample=problem.sample,
        seed=problem.seed,
    )
    ctx.info.update(
        objective=float(objective[-1]) if picks else 0.0,
        objective_max=problem.ceiling,
        k=problem.k,
        sigma=problem.sigma,
        sample="all" if problem.sample is None else problem.sample,
    )
    return order, objective


def objective_of(graph: sp.csr_matrix, order: NDArray[np.int64]) -> NDArray[np.float64]:
    """The facility objective ``F`` after each pick of ``order`` on ``graph`` (row ``j``: the
    cells ``j`` covers and how much): each pick adds what it covers beyond the picks before.
    Vectorized over a block of picks at a time (:data:`OBJECTIVE_BLOCK`): the block's entries by
    cell, then by pick, each adding what it exceeds the cell's running maximum by; a block's
    temporaries are a few arrays as long as its entries."""
    order = np.asarray(order, dtype=np.int64)
    indptr = np.asarray(graph.indptr, dtype=np.int64)
    best = np.zeros(graph.shape[1], dtype=np.float32)  # each cell's largest similarity so far
    gains = np.zeros(len(order), dtype=np.float64)
    for lo in range(0, len(order), OBJECTIVE_BLOCK):
        part = order[lo : lo + OBJECTIVE_BLOCK]
        lengths = indptr[part + 1] - indptr[part]
        turn = np.repeat(np.arange(len(part), dtype=np.int64), lengths)
        at = np.repeat(indptr[part] - np.cumsum(lengths) + lengths, lengths)
        at += np.arange(len(turn), dtype=np.int64)  # the entries' places in indices and data
        by = np.lexsort((turn, graph.indices[at]))  # by cell, then by pick
        at, turn = at[by], turn[by]
        del by
        cells = graph.indices[at]
        sims = graph.data[at].astype(np.float64)
        del at
        first = np.ones(len(cells), dtype=bool)
        first[1:] = cells[1:] != cells[:-1]
        # a running maximum within each cell: lifting each cell's entries by its rank times
        # twice the largest entry (1 for similarities) keeps every cell's maximum above all
        # earlier cells'
        span = 2.0 * max(1.0, float(sims.max())) if len(sims) else 2.0
        lift = span * np.cumsum(first)
        running = np.maximum.accumulate(sims + lift) - lift
        before = np.empty_like(sims)
        before[1:] = running[:-1]
        before[first] = 0.0
        np.maximum(before, best[cells], out=before)  # and the picks of earlier blocks
        gains[lo : lo + len(part)] = np.bincount(
            turn, weights=np.maximum(sims - before, 0.0), minlength=len(part)
        )
        last = np.ones(len(cells), dtype=bool)
        last[:-1] = first[1:]
        np.maximum.at(best, cells[last], running[last].astype(np.float32))
    return np.cumsum(gains, dtype=np.float64)


def _beyond_reference(
    graph: sp.csr_matrix, covered: NDArray[np.float32], sigma: float
) -> sp.csr_matrix:
    """The graph for a pool whose cells a reference corpus already covers: cell ``i`` is covered
    to ``c_i = exp(-(d_i / sigma) ** 2)`` by its nearest reference cell (``d_i``, ``covered``).
    Since ``max(c, max_j s_j) = c + max_j max(0, s_j - c)``, facility location with the
    reference counted as picked is, up to the constant ``sum_i c_i``, plain facility location
    on ``s'(i, j) = max(0, s(i, j) - c_i)``: exact, and the kernel is unchanged."""
    reach = np.exp(-((covered.astype(np.float64) / sigma) ** 2)).astype(np.float32)
    out = graph.copy()
    out.data = np.maximum(out.data - reach[out.indices], 0.0).astype(np.float32)
    out.eliminate_zeros()
    return out


def facility_location(ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """Stochastic greedy facility location; records the objective after each pick.

    Parameters (``--param``): ``k`` (neighbours per cell, default 15), ``sigma`` (the kernel's
    length scale; default the median distance of a cell to its ``k``-th neighbour), ``sample``
    (candidates drawn per pick, default 2048 or half the pool where that is fewer; ``all`` for
    the exact lazy greedy).
    With a reference corpus (``ctx.covered``), the corpus counts as already picked: a pool cell
    near it gains little from a pick, so the picks go to what the corpus lacks; the objective
    is then the coverage added beyond the corpus's own.
    ``ctx.info``: ``objective`` (final F), ``objective_curve`` (F after each pick, a list),
    ``objective_max`` (F with every cell selected), ``k``, ``sigma``, ``sample``.
    """
    order, objective = run_facility(ctx, budget)
    ctx.info["objective_curve"] = objective.tolist()
    return order


def facility_kcenter(ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """Representatives first, then the gaps: facility location picks (as ``facility``) while
    each pick's gain is at least ``switch`` times the first pick's, then farthest-first from
    every cell picked so far.

    The switch is the first pick whose gain falls below the bar, a property of the facility
    run's prefix, so the order does not depend on the budget: the first ``m`` picks of a run
    with budget ``B`` are the run with budget ``m``.

    Parameters (``--param``): ``switch`` (default 0.1; 0 is ``facility`` alone, above 1 one
    facility pick then farthest-first), and ``facility``'s ``k``, ``sigma``, ``sample``.
    ``ctx.info``: ``facility``'s, and ``representatives`` (picks before the switch).
    """
    switch = non_negative(ctx, "switch", str(DEFAULT_SWITCH))
    picks, objective = run_facility(ctx, budget)
    gains = np.diff(objective, prepend=0.0)
    below = np.flatnonzero(gains < switch * gains[0]) if budget else np.empty(0, np.int64)
    cut = int(below[0]) if len(below) else budget
    ctx.info["representatives"] = cut
    if cut == budget:
        return picks
    rest, _ = farthest_first(ctx.embeddings, budget - cut, initial=picks[:cut])
    return np.concatenate([picks[:cut], rest]).astype(np.int64)

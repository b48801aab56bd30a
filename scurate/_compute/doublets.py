"""The doublet score: a kNN score against simulated doublets, as Scrublet computes it:
``SIM_RATIO`` simulated doublets per cell (at most ``MAX_SIMULATED`` in all, so a million cells
stay cheap), each the sum of the raw counts of two random cells of one counts source, projected
with the fitted PCA. A cell's score is ``s / (s + r)``: ``r`` real cells and ``s`` simulated
doublets inside the radius of its own neighbourhood (:func:`own_radius`). That radius is the
distance to the farthest of its 10 nearest other cells (the pool's neighbour search, reused)
that lie within ``CLUSTER_RADIUS`` (1.5) times the distance to its second nearest, and at least
to its ``MIN_NEIGHBOURS``-th (4th) nearest: in a common type all 10, but a cell of a rare type
stops at its own few cells instead of reaching past them to the simulations halfway to the
next type. ``s`` comes from a search against an index over the simulated doublets only,
``FIRST_SEARCH`` (10) wide, and ``SIM_NEIGHBOURS`` (100) wide for the cells whose 10 nearest all
lie inside the radius (5-17 % of the cells measured). ``doublets=auto`` calls a cell a doublet
above the higher of two thresholds (:func:`auto_threshold`): the one that splits the simulated
doublets' own scores (computed the same way) into two classes (Otsu's rule: homotypic
simulations score like singlets, heterotypic ones high), and 3 scaled MADs above the median of
the cells' own scores (scater's ``isOutlier``, as :func:`gene_floor`): most cells are singlets,
so a doublet is an outlier among them. Otsu's split alone fell inside the bulk of the cells'
scores wherever the simulations overlap the cells (10 % of the example corpus called where none
is planted).

Measured against Scrublet 0.2.3 (``benchmarks/bench_doublets.py``; benchmarks/README.md has the
table): the score before this one, the share of simulations among a cell's 10 nearest in cells
plus simulations, called 67 of the 2,914 singlets of tests/qc_corpus.py's corpus with 78 of its
80 planted doublets (Scrublet: 17 with 80), 5 of the 6 cells of its rare ILC type, and 5.6 % of
Baron's pancreas (Scrublet 0.7 %): 10 neighbours give scores in steps of 0.1, a deep singlet
near the homotypic simulations scores as high as a doublet, and a rare cell's 10 nearest reach
past its own cells. A count inside a radius separates them (on that corpus a doublet's radius
holds 26-144 simulations, 5th-95th percentile, a singlet's 0-7): 12 singlets with all 80
caught (4 at Scrublet's recall), no rare cell, Baron 0.4 %, CellBench's two-cell wells 61 of
116 (63 before). Tried and left out: the radius of the 10th nearest for every cell (as few
singlets, but 2, 6, 0 and 3 rare cells called on seeds 0-3 of the corpus); simulated sums
thinned to one parent's depth (31 of 80 caught at 10 neighbours; at 24 it called a whole 6-cell
rare type); leaving out simulations with a parent inside the cell's radius (no rare cell, but
CellBench 43 of 116); Scrublet's expected-rate correction (monotone in the share: it moves no
cell's rank).

Where no model made the embedding (a stored ``obsm`` embedding), no cell gets a doublet score
and the report says why: the midpoint of two cells' embeddings, the only simulation left there,
was measured useless (on a corpus with 80 planted heterotypic doublets it caught 2 % of them at
its own threshold, and at any threshold flagged more singlets than doublets: same-type midpoints
sit in the dense centre of their type, and a summed cell's log-normalized profile is not the
midpoint of its two cells' profiles). Cells of sources without counts get no score either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate import _backend as backend
from scurate._compute.faiss_index import SEARCH_CHUNK, build_index, deserialize, serialize
from scurate._compute.qc import median_mad
from scurate._data import spill
from scurate._data.sources import Source, read_rows

ProjectCounts = Callable[[int, sp.csr_matrix], NDArray[np.float32]]  # the PCA model's projection

NO_MODEL = (
    "the embedding has no model to put simulated doublets in its space (a stored obsm"
    " embedding); midpoints of two cells were measured useless (see scurate._compute.qc)"
)
SIM_RATIO = 0.5  # simulated doublets per cell (1 and 0.25 measured worse)
MAX_SIMULATED = 50_000  # simulated doublets at most, whatever the pool
MIN_SIMULATED = 500  # a small pool still gets enough to see both modes
SIM_CHUNK = 4096  # pairs read and projected at a time
SIM_NEIGHBOURS = 100  # simulated doublets searched per cell: the score counts those inside its
# radius, so this caps the count (60 set Otsu's split lower on the planted corpus: 14-30
# singlets called over 4 seeds; 100 and 200: 12-23)
CLUSTER_RADIUS = 1.5  # real neighbours past this many times the second nearest's distance lie
# outside the cell's own cluster (1.3 lost planted doublets; 1.75 called a rare pDC)
MIN_NEIGHBOURS = 4  # a cell's radius reaches at least its 4th nearest other cell (the 4 others
# of a rare type of 5 cells)
FIRST_SEARCH = 10  # simulated doublets searched first; SIM_NEIGHBOURS only where all 10 are in
DOUBLET_CHUNK = SEARCH_CHUNK // 4  # cells per search against the simulated doublets: it is
# SIM_NEIGHBOURS wide, so 16,384 rows hold about 20 MB of labels and distances
EXACT_BAND = 1e-3  # relative: a FAISS distance this near a radius is recomputed exactly


def _pairs(
    sizes: NDArray[np.int64], n_sim: int, rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """``n_sim`` pairs of distinct cells, each of one source (chosen in proportion to its
    size): (source, row a, row b), rows within the source."""
    weights = np.where(sizes >= 2, sizes, 0).astype(np.float64)
    src = rng.choice(len(sizes), size=n_sim, p=weights / weights.sum())
    a = (rng.random(n_sim) * sizes[src]).astype(np.int64)
    b = (rng.random(n_sim) * (sizes[src] - 1)).astype(np.int64)
    b += b >= a  # distinct from a
    return src, a, b


def _simulate(
    sources: Sequence[Source],
    dims: int,
    pairs: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    project_counts: ProjectCounts,
) -> NDArray[np.float32]:
    """The simulated doublets in the pool's space: each pair's counts summed and projected."""
    src, a, b = pairs
    out = np.empty((len(src), dims), dtype=np.float32)
    for k, source in enumerate(sources):
        mine = np.flatnonzero(src == k)
        for lo in range(0, len(mine), SIM_CHUNK):
            part = mine[lo : lo + SIM_CHUNK]
            rows, where = np.unique(np.r_[a[part], b[part]], return_inverse=True)
            x = sp.csr_matrix(read_rows(source, rows), dtype=np.float32)
            both = x[where[: len(part)]] + x[where[len(part) :]]
            out[part] = project_counts(k, sp.csr_matrix(both))
    return out


def _exact_d2(
    q: NDArray[np.float32], base: NDArray[np.float32], labels: NDArray[np.int64]
) -> NDArray[np.float32]:
    """Squared distances from each row of ``q`` to its ``labels`` rows of ``base``, in float64
    and one fixed order (FAISS's own differ in the last bits with the number of threads)."""
    out = np.full(labels.shape, np.inf, dtype=np.float32)
    for j in range(labels.shape[1]):
        found = labels[:, j] >= 0
        diff = q[found].astype(np.float64) - base[labels[found, j]]
        out[found, j] = np.einsum("ij,ij->i", diff, diff)
    return out


def own_radius(real_d2: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Per row of squared distances to the nearest other cells (nearest first, inf past the
    end): the squared radius of the cell's neighbourhood and the real cells inside it. The
    radius is the distance to the farthest of the listed neighbours that lie within
    ``CLUSTER_RADIUS`` times the distance to the second nearest (its own cluster), and at least
    the ``MIN_NEIGHBOURS``-th nearest: a cell of a rare type stops at its own few cells."""
    n, k = real_d2.shape
    finite = np.isfinite(real_d2).sum(axis=1)
    base = real_d2[:, min(1, k - 1)][:, None] * CLUSTER_RADIUS**2
    within = (real_d2 <= base).sum(axis=1)
    count = np.minimum(np.maximum(within, MIN_NEIGHBOURS), finite)
    count = np.maximum(count, 1).astype(np.int64)
    radius = real_d2[np.arange(n), count - 1]
    return radius.astype(np.float32), count


def _count_inside(
    q: NDArray[np.float32],
    sim: NDArray[np.float32],
    d2: NDArray[np.float32],
    labels: NDArray[np.int64],
    radius: NDArray[np.float32],
) -> NDArray[np.int64]:
    """Per row of ``q``, how many of its listed simulated doublets (``labels``, FAISS's squared
    distances ``d2``) lie strictly inside its squared ``radius`` (a tie goes to the real cell).
    Distances within ``EXACT_BAND`` of the radius are recomputed in float64 first, so that the
    count does not depend on FAISS's last bits (they vary with the number of threads)."""
    found = labels >= 0
    inside = found & (d2 < radius[:, None])
    near = found & (np.abs(d2 - radius[:, None]) <= EXACT_BAND * radius[:, None])
    if near.any():
        rows, cols = np.nonzero(near)
        diff = q[rows].astype(np.float64) - sim[labels[rows, cols]]
        inside[rows, cols] = np.einsum("ij,ij->i", diff, diff) < radius[rows]
    counted: NDArray[np.int64] = inside.sum(axis=1)
    return counted


def _count_within(
    q: NDArray[np.float32],
    sim: NDArray[np.float32],
    sim_index: Any,
    radius: NDArray[np.float32],
    wide: int,
) -> NDArray[np.int64]:
    """:func:`_count_inside` over the ``wide`` nearest simulated doublets, searching that wide
    only for the rows whose ``FIRST_SEARCH`` nearest do not already end outside the radius (most
    cells are singlets with a few inside: the wide search costs 1.7x the narrow one). The same
    count as one wide search: FAISS ranks the first ``FIRST_SEARCH`` of both alike."""
    first = min(FIRST_SEARCH, wide)
    d2, labels = sim_index.search(q, first)
    inside = _count_inside(q, sim, d2, labels.astype(np.int64), radius)
    ending_inside = d2[:, -1] < radius * (1.0 + EXACT_BAND)
    more = np.flatnonzero(ending_inside) if wide > first else np.zeros(0, dtype=np.int64)
    if len(more):
        d2, labels = sim_index.search(np.ascontiguousarray(q[more]), wide)
        inside[more] = _count_inside(q[more], sim, d2, labels.astype(np.int64), radius[more])
    return inside


def _count_block(
    sim: NDArray[np.float32],
    sim_index: Any,
    wide: int,
    block: tuple[NDArray[np.int64], NDArray[np.float32], Any, Any],
) -> tuple[NDArray[np.int64], Any, NDArray[np.int64]]:
    """One block of cells (rows, embedding, radius, real cells inside it): its rows, real
    counts and simulated doublets inside the radius (:func:`_count_within`)."""
    rows, q, radius, real = block
    return rows, real, _count_within(q, sim, sim_index, radius, wide)


def _count_shipped(
    sim: NDArray[np.float32],
    data: NDArray[np.uint8],
    wide: int,
    block: tuple[NDArray[np.int64], NDArray[np.float32], Any, Any],
) -> tuple[NDArray[np.int64], Any, NDArray[np.int64]]:
    """:func:`_count_block` in a task, the simulations' index shipped serialized."""
    return _count_block(sim, deserialize(data), wide, block)


def _doublets_label(block: tuple[NDArray[np.int64], Any, Any, Any]) -> str:
    rows = block[0]
    return f"the doublet scores of rows {rows[0]}..{rows[-1]}"


def _ratio(inside: NDArray[np.int64], real: NDArray[np.int64]) -> NDArray[np.float32]:
    """The score: simulated doublets inside the radius over all cells and simulations there."""
    share: NDArray[np.float32] = (inside / (inside + real)).astype(np.float32)
    return share


def otsu(scores: NDArray[np.float32]) -> float:
    """The threshold that best splits ``scores`` into two classes (Otsu's rule: the largest
    between-class variance over the distinct values); a score above it is the upper class."""
    levels, counts = np.unique(scores, return_counts=True)
    if len(levels) < 2:
        return float(levels[-1]) if len(levels) else 1.0
    w = counts / counts.sum()
    w0 = np.cumsum(w)[:-1]
    mu = np.cumsum(w * levels)[:-1]
    total = float((w * levels).sum())
    between = (total * w0 - mu) ** 2 / (w0 * (1 - w0))
    return float(levels[int(np.argmax(between))])


OUTLIER_MADS = 3.0  # a cell's score this many scaled MADs above the cells' median is an outlier


def outlier_bound(scores: NDArray[np.float32]) -> float:
    """``OUTLIER_MADS`` scaled MADs (1.4826 MAD) above the median of ``scores`` (NaN left out);
    0 for no score."""
    values = scores[np.isfinite(scores)].astype(np.float64)
    if len(values) == 0:
        return 0.0
    median, mad = median_mad(values)
    return median + OUTLIER_MADS * mad


def auto_threshold(
    scores: NDArray[np.float32], sim_scores: NDArray[np.float32]
) -> tuple[float, str]:
    """``doublets=auto``'s threshold (see the module doc) and which bound set it."""
    split, bound = otsu(sim_scores), outlier_bound(scores)
    if bound > split:
        return bound, "median + 3 MADs of the cells' scores"
    return split, "Otsu's split of the simulated doublets' scores"


def doublet_scores(
    sources: Sequence[Source],
    values: NDArray[np.float32],
    knn_d2: NDArray[np.float32],
    pool_index: Any,
    *,
    project_counts: ProjectCounts | None,
    counts_ok: Sequence[bool],
    rng: np.random.Generator,
) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """Each cell's doublet score (NaN where not scored) and the report's record of it (see the
    module doc).

    ``knn_d2`` holds each cell's squared distances to its ``k`` nearest other cells (from the
    pool's neighbour search; inf past the end), ``pool_index`` the FAISS index over ``values``
    it searched; ``counts_ok`` says which sources have raw counts.
    """
    n, k = knn_d2.shape
    scores = np.full(n, np.nan, dtype=np.float32)
    sizes = np.array([s.n_obs for s in sources], dtype=np.int64)
    counted = np.where(np.asarray(counts_ok, dtype=bool), sizes, 0)
    if project_counts is None:
        return scores, {"not_scored": NO_MODEL}
    if k < 1 or int(counted.max(initial=0)) < 2:
        return scores, {"not_scored": "no source has two cells with raw counts"}
    n_sim = int(min(MAX_SIMULATED, max(MIN_SIMULATED, round(SIM_RATIO * counted.sum()))))
    pairs = _pairs(counted, n_sim, rng)
    sim = _simulate(sources, values.shape[1], pairs, project_counts)
    sim_index, _ = build_index(sim, n_queries=n + n_sim)
    wide = min(SIM_NEIGHBOURS, n_sim)
    scored = np.repeat(np.asarray(counts_ok, dtype=bool), sizes)
    adapted = 0

    def blocks() -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32], Any, Any]]:
        for lo in range(0, n, DOUBLET_CHUNK):
            rows = np.flatnonzero(scored[lo : lo + DOUBLET_CHUNK]) + lo
            if len(rows):
                q = np.ascontiguousarray(values[rows])
                radius, real = own_radius(np.sort(knn_d2[rows], axis=1))  # sorted: cheap
                yield rows, q, radius, real

    run = backend.current()  # on Ray: the simulations and their index shipped once
    count = partial(_count_block, sim, sim_index, wide)
    if not run.in_process:
        count = partial(_count_shipped, sim, serialize(sim_index), wide)
    for rows, real, inside in run.map(count, blocks(), label=_doublets_label):
        adapted += int((real < k).sum())
        scores[rows] = _ratio(inside, real)
        spill.release()  # a mapped embedding's pages: one block resident at a time
    sim_scores = np.empty(n_sim, dtype=np.float32)
    for lo in range(0, n_sim, DOUBLET_CHUNK):
        q = sim[lo : lo + DOUBLET_CHUNK]
        own = np.arange(lo, lo + len(q))[:, None]
        _, real_labels = pool_index.search(q, k)
        real_d2 = np.sort(_exact_d2(q, values, real_labels.astype(np.int64)), axis=1)
        d2, sim_labels = sim_index.search(q, min(wide + 1, n_sim))
        sim_labels = sim_labels.astype(np.int64)
        sim_labels[sim_labels == own] = -1  # a simulated doublet is not its own neighbour
        radius, real = own_radius(real_d2)
        sim_scores[lo : lo + len(q)] = _ratio(_count_inside(q, sim, d2, sim_labels, radius), real)
        spill.release()
    threshold, set_by = auto_threshold(scores, sim_scores)
    info = {
        "method": (
            "simulated doublets inside the radius of the cell's own nearest cells, over all"
            " cells and simulations there (Scrublet-like)"
        ),
        "k": k,
        "radius_rule": (
            f"the farthest of the {k} nearest other cells within {CLUSTER_RADIUS} x the second"
            f" nearest's distance, at least the {MIN_NEIGHBOURS}th nearest"
        ),
        "cells_with_a_smaller_radius": adapted,
        "simulated_searched": wide,
        "n_simulated": n_sim,
        "simulation": "raw counts of two cells of one source summed, projected with the PCA",
        "simulation_cap": MAX_SIMULATED,
        "threshold": threshold,
        "threshold_rule": (
            "the higher of Otsu's split of the simulated doublets' own scores and the cells'"
            " median + 3 MADs"
        ),
        "threshold_set_by": set_by,
        "simulated_above_threshold": round(float((sim_scores > threshold).mean()), 4),
        "cells_above_threshold": int((np.nan_to_num(scores) > threshold).sum()),
    }
    return scores, info

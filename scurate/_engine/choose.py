"""The policy step of ``select`` and ``bench``: cells that are not primary data (with
``primary_only``), cells that fail QC and duplicates set aside, the budget checked against what
is left, the policy looked up and run (inside each stratum where strata are given)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scurate import _heap as heap
from scurate._compute.qc import failures
from scurate._compute.scoring import keep_mask
from scurate._engine.context import Rows, SelectionContext, obs_reader, run_policy
from scurate._engine.options import PoolOptions, SelectOptions, check_budget
from scurate._engine.stages import ScoredPool, primary_cells
from scurate._engine.strata import run_stratified
from scurate._plugins.registry import Registered

# pools from this size give the heap back before the policy runs (a collection and a
# malloc_trim, about 0.1 s; a bench calls choose hundreds of times on small pools)
TRIM_CELLS = 1_000_000


@dataclass
class Chosen:
    """A policy's pick from a scored pool: ``order`` (pool rows, priority first), the policy,
    what it left in its context (``info``, and ``params`` with the keys it read), and which
    cells it could choose from (``keep``, ``candidates``; with ``primary_only``, ``primary``
    says which cells that option let through). The context itself is not kept: its copy of
    the candidates' embedding, manifest rows and neighbour lists go once the policy is done."""

    order: NDArray[np.int64]
    policy: Registered
    info: dict[str, Any]
    params: dict[str, str]
    keep: NDArray[np.bool_]
    candidates: NDArray[np.int64]
    primary: NDArray[np.bool_] | None = None  # with primary_only: cells not marked non-primary
    qc_failed: dict[str, NDArray[np.bool_]] | None = None  # per QC filter, the cells it fails

    @property
    def failed_qc(self) -> NDArray[np.bool_]:
        """Cells that fail any QC filter."""
        n = len(self.keep)
        fails = list((self.qc_failed or {}).values())
        return np.logical_or.reduce(fails) if fails else np.zeros(n, dtype=bool)


def policy_rng(seed: int) -> np.random.Generator:
    """The generator a policy draws from for ``seed`` (the second of the seed's two streams;
    the embedding takes the first)."""
    _, policy_seed = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(policy_seed)


def qc_failures(pool: ScoredPool, options: PoolOptions) -> dict[str, NDArray[np.bool_]]:
    """Per QC filter of ``options.qc``, the pool cells it fails (none without QC values)."""
    qc = pool.scores.qc
    if qc is None:
        return {}
    manifest = pool.manifest
    columns = [manifest[c] for c in ("dataset_id", "assay", "suspension_type")]
    return failures(qc, options.qc, *columns)


def choose(pool: ScoredPool, options: SelectOptions) -> Chosen:
    """Run the options' policy for their budget on a scored pool: with ``primary_only``, cells
    whose ``is_primary_data`` is false set aside; cells that fail a QC filter set aside; exact
    copies and near-duplicate groups set aside (unless ``keep_duplicates``; a set of copies
    whose kept copy is set aside keeps another instead); quotas per stratum where ``strata``
    are given; the policy's generator seeded by ``seed``."""
    scores, manifest, n = pool.scores, pool.manifest, pool.manifest.height
    primary = primary_cells(manifest) if options.primary_only else None
    qc_failed = qc_failures(pool, options)
    failed = np.logical_or.reduce(list(qc_failed.values())) if qc_failed else None
    eligible = primary
    if failed is not None:
        eligible = ~failed if primary is None else primary & ~failed
    if options.keep_duplicates:
        keep = np.ones(n, dtype=bool) if eligible is None else eligible.copy()
    else:
        keep = keep_mask(scores.exact_dup_of, scores.near_dup_group, eligible)
    candidates = np.flatnonzero(keep)
    budget = options.budget
    not_primary = 0 if primary is None else int((~primary).sum())
    failed_qc = 0
    if failed is not None:
        failed_qc = int((failed if primary is None else failed & primary).sum())
    check_budget(
        budget,
        len(candidates),
        set_aside=n - len(candidates) - not_primary - failed_qc,
        not_primary=not_primary,
        failed_qc=failed_qc,
    )
    chosen = pool.plugins.get("policies", options.policy, option="policy")
    everyone = len(candidates) == n
    graph = scores.graph
    if graph is not None and not everyone:
        graph = graph.restricted(candidates)
    seen = manifest.select("dataset_id", "row")  # which source and obs row, for the reader
    ctx = SelectionContext(
        pool.embedding.values if everyone else Rows(pool.embedding.values, candidates),
        manifest if everyone else Rows(manifest, candidates),
        policy_rng(options.seed),
        params=dict(options.params),
        covered=None if scores.novelty is None else scores.novelty[candidates],
        obs=obs_reader(pool.sources, seen if everyone else seen[candidates]),
        graph=graph,
    )
    if n >= TRIM_CELLS:  # the masks' temporaries, before the policy's peak stacks on them
        heap.trim()
    if options.strata is None:
        within = run_policy(chosen, ctx, budget)
    else:
        within = run_stratified(chosen, ctx, budget, columns=options.strata, quota=options.quota)
    return Chosen(
        candidates[within], chosen, ctx.info, ctx.params, keep, candidates, primary, qc_failed
    )

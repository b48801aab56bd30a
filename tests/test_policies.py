"""The first-party policies facility, sketch and reweight: slow references, prefixes, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scurate
from scurate import _core
from scurate._engine.context import SelectionContext
from scurate.errors import OptionError

from scurate_policies.facility import facility_location
from scurate_policies.reweight import reweight
from scurate_policies.sketch import sketch


def context(n: int, seed: int = 0, **columns: list[str | None]) -> SelectionContext:
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, 5)) + rng.integers(0, 4, size=(n, 1)) * 3).astype(np.float32)
    manifest = pl.DataFrame({"row": range(n), **columns})
    return SelectionContext(x, manifest, np.random.default_rng(seed + 100))


def facility_reference(x: np.ndarray, budget: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense numpy: exact kNN, the same kernel, plain greedy recomputing every gain."""
    n = len(x)
    d = np.sqrt(((x[:, None].astype(np.float64) - x[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1, kind="stable")[:, :k]
    kth = d[np.arange(n), near[:, -1]]
    sigma = np.median(kth)
    sim = np.zeros((n, n))  # sim[j, i]: how well j covers i
    for i in range(n):
        sim[near[i], i] = np.exp(-((d[i, near[i]] / sigma) ** 2)).astype(np.float32)
    sim[np.arange(n), np.arange(n)] = 1.0
    best, order, objective = np.zeros(n), [], []
    for _ in range(budget):
        gains = np.maximum(sim - best, 0).sum(1)
        gains[order] = -1
        j = int(np.argmax(gains))
        order.append(j)
        best = np.maximum(best, sim[j])
        objective.append(best.sum())
    return np.array(order), np.array(objective)


@pytest.mark.parametrize("seed", range(3))
def test_facility_matches_the_dense_reference(seed: int) -> None:
    ctx = context(250, seed)
    ctx.params = {"k": "8", "sample": "all"}  # the exact greedy (the default samples)
    order = facility_location(ctx, 60)
    want_order, want_objective = facility_reference(ctx.embeddings, 60, 8)
    np.testing.assert_array_equal(order, want_order)
    np.testing.assert_allclose(ctx.info["objective_curve"], want_objective, rtol=1e-5)
    assert ctx.info["objective"] <= ctx.info["objective_max"] == 250
    assert ctx.info["k"] == 8 and ctx.info["sigma"] > 0


def test_facility_params_and_tiny_pools() -> None:
    ctx = context(1)
    assert facility_location(ctx, 1).tolist() == [0]
    ctx = context(40)
    ctx.params = {"k": "zero"}
    with pytest.raises(OptionError, match=r"params\['k'\]='zero': expected a positive integer"):
        facility_location(ctx, 5)
    ctx.params = {"k": "100", "sigma": "2.5"}  # k above the pool: every other cell
    assert len(set(facility_location(ctx, 40).tolist())) == 40 and ctx.info["sigma"] == 2.5


def test_sketch_cycles_over_the_boxes() -> None:
    ctx = context(2000, 1)
    ctx.params = {"boxes": "120"}
    order = sketch(ctx, 400)
    box, n_boxes, side = _core.grid_covering(ctx.embeddings, 120, alpha=0.1)
    assert ctx.info == {"boxes": n_boxes, "box_side": side}
    sizes = np.bincount(box)
    # round 1: one cell of every box; round 2: one of every box with two or more; ...
    first_round = box[order[:n_boxes]]
    assert sorted(first_round.tolist()) == list(range(n_boxes))
    second = box[order[n_boxes : n_boxes + int((sizes >= 2).sum())]]
    assert sorted(second.tolist()) == np.flatnonzero(sizes >= 2).tolist()
    ctx.params = {"boxes": "many"}
    with pytest.raises(OptionError, match=r"params\['boxes'\]='many': expected a positive integer"):
        sketch(ctx, 10)


def reweight_reference(labels: list[str | None], budget: int) -> dict[str | None, int]:
    """Water-filling by hand: equal shares, a type below its share taken whole."""
    sizes = {t: labels.count(t) for t in set(labels)}
    counts = dict.fromkeys(sizes, 0)
    left = budget
    while left:
        open_ = [t for t in sizes if counts[t] < sizes[t]]
        share = max(1, left // len(open_))
        # rarest first, then by name, null last: who gets the odd cells
        for t in sorted(open_, key=lambda t: (sizes[t], t is None, t or "")):
            take = min(share, sizes[t] - counts[t], left)
            counts[t] += take
            left -= take
    return counts


def test_reweight_water_fills_every_prefix() -> None:
    rng = np.random.default_rng(4)
    types = ["T"] * 500 + ["B"] * 200 + ["pDC"] * 7 + ["NK"] * 60 + [None] * 33
    labels = [types[i] for i in rng.permutation(len(types))]
    ctx = context(len(labels), cell_type=labels)
    order = reweight(ctx, 300)
    chosen = [labels[i] for i in order]
    for m in (1, 5, 28, 100, 151, 300):
        got = {t: chosen[:m].count(t) for t in set(labels)}
        assert got == reweight_reference(labels, m), m
    assert {t["type"]: t["selected"] for t in ctx.info["types"]} == {
        "pDC": 7,
        None: 33,
        "NK": 60,
        "B": 100,
        "T": 100,
    }


def test_reweight_needs_a_filled_label() -> None:
    ctx = context(30, cell_type=[None] * 30)
    empty = r"params\['label'\]='cell_type': the manifest column is empty"
    with pytest.raises(OptionError, match=empty):
        reweight(ctx, 5)
    ctx.params = {"label": "tissue_kind"}
    with pytest.raises(OptionError, match=r"params\['label'\]='tissue_kind': not a manifest"):
        reweight(ctx, 5)


PREFIX_RUNS = [
    ("facility", {}),
    ("sketch", {"boxes": "120"}),
    ("reweight", {"label": "dataset_id"}),
]


@pytest.mark.parametrize(("policy", "params"), PREFIX_RUNS)
def test_every_prefix_is_the_smaller_selection(
    two_labs: list[Path], policy: str, params: dict[str, str]
) -> None:
    big = scurate.select(two_labs, 120, policy=policy, params=params, seed=4)
    small = scurate.select(two_labs, 30, policy=policy, params=params, seed=4)
    assert big.selected["cell_id"][:30].to_list() == small.selected["cell_id"].to_list()
    again = scurate.select(two_labs, 30, policy=policy, params=params, seed=4)
    assert again.selected["cell_id"].to_list() == small.selected["cell_id"].to_list()
    if policy != "facility":  # facility uses no randomness: the same for every seed
        other = scurate.select(two_labs, 30, policy=policy, params=params, seed=5)
        assert other.selected["cell_id"].to_list() != small.selected["cell_id"].to_list()


def test_facility_reports_its_objective(two_labs: list[Path]) -> None:
    report = scurate.select(two_labs, 40, policy="facility", qc="off").report
    info = report["policy_info"]
    assert len(info["objective_curve"]) == 40 and info["objective"] == info["objective_curve"][-1]
    assert 40 < info["objective"] < info["objective_max"] == 1598

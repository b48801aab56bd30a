"""The selection driver: policy output checks, parameters, budget; policies are prefix-ordered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scurate
from scurate._engine.context import SelectionContext, run_policy
from scurate._engine.options import check_budget, parse_params
from scurate._plugins.registry import Registered
from scurate.errors import OptionError, PluginError


def context(n: int = 50) -> SelectionContext:
    rng = np.random.default_rng(0)
    return SelectionContext(
        rng.normal(size=(n, 4)).astype(np.float32), pl.DataFrame({"row": range(n)}), rng
    )


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (lambda ctx, b: [0] * b, "returned the same row more than once"),
        (lambda ctx, b: list(range(b - 1)), "returned 4 rows for a budget of 5"),
        (lambda ctx, b: [0, 1, 2, 3, 50], r"returned rows outside 0..49"),
        (
            lambda ctx, b: np.zeros((b, 2), dtype=int),
            r"returned int64 of shape \(5, 2\); expected 1-D integer rows",
        ),
        (lambda ctx, b: 1 / 0, "failed: ZeroDivisionError: division by zero"),
    ],
)
def test_a_policy_output_is_checked_and_the_plugin_named(returned: object, message: str) -> None:
    policy = Registered("sloppy", "sloppy-plugin", returned)
    with pytest.raises(
        PluginError, match=rf"^policy 'sloppy' \(plugin 'sloppy-plugin'\) {message}"
    ):
        run_policy(policy, context(), 5)


def test_params_and_budget() -> None:
    assert parse_params(["first=central", "k = 3"]) == {"first": "central", "k": "3"}
    with pytest.raises(OptionError, match="params='oops': expected key=value"):
        parse_params(["oops"])
    with pytest.raises(OptionError, match="budget=11 is more than the 10 cells in the pool"):
        check_budget(11, 10)
    with pytest.raises(OptionError, match="budget=0: must be at least 1"):
        check_budget(0, 10)


@pytest.mark.parametrize("policy", ["kcenter", "random"])
def test_every_prefix_is_the_smaller_selection(two_labs: list[Path], policy: str) -> None:
    big = scurate.select(two_labs, 120, policy=policy, seed=4)
    small = scurate.select(two_labs, 30, policy=policy, seed=4)
    assert big.selected["cell_id"][:30].to_list() == small.selected["cell_id"].to_list()
    other_seed = scurate.select(two_labs, 30, policy=policy, seed=5)
    assert other_seed.selected["cell_id"].to_list() != small.selected["cell_id"].to_list()


def test_kcenter_covers_better_than_random(two_labs: list[Path]) -> None:
    kc = scurate.select(two_labs, 40, policy="kcenter", qc="off")  # the whole pool
    rnd = scurate.select(two_labs, 40, policy="random", qc="off")
    assert kc.report["covering_radius"] < rnd.report["covering_radius"]
    curve = kc.report["covering_radius_curve"]
    assert curve[-1] == {"n_selected": 40, "radius": kc.report["covering_radius"]}


def test_central_first_pick_is_the_cell_nearest_the_mean() -> None:
    from scurate_policies.kcenter import kcenter

    ctx = context(200)
    ctx.params = {"first": "central"}
    order = kcenter(ctx, 10)
    mean = ctx.embeddings.mean(axis=0)
    assert order[0] == np.argmin(((ctx.embeddings - mean) ** 2).sum(axis=1))
    assert len(ctx.info["covering_radius"]) == 10
    ctx.params = {"first": "middle"}
    with pytest.raises(OptionError, match=r"params\['first'\]='middle': expected 'random' or"):
        kcenter(ctx, 10)


def test_nearest_distance_matches_numpy() -> None:
    from scurate._compute.faiss_index import nearest_distance

    rng = np.random.default_rng(2)
    base = rng.normal(size=(40, 6)).astype(np.float32)
    queries = rng.normal(size=(300, 6)).astype(np.float32)
    expected = np.sqrt(((queries[:, None, :] - base[None]) ** 2).sum(-1).min(1))
    np.testing.assert_allclose(nearest_distance(base, queries), expected, rtol=1e-4, atol=1e-5)


def test_report_has_the_mean_distance_to_the_selection(two_labs: list[Path]) -> None:
    report = scurate.select(two_labs, 30).report
    assert 0 < report["mean_distance_to_selected"] < report["covering_radius"]

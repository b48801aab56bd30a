"""The policies that mix coverage with representativeness (issue 17): facility (stochastic),
facility-kcenter, kcenter-density, facility-density, cluster-balance; and label columns read
from obs."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pandas as pd
import polars as pl
import pytest
from numpy.typing import NDArray
from scurate import farthest_first
from scurate._engine.context import Rows, SelectionContext, obs_reader
from scurate.errors import OptionError
from scurate.plugin import greedy_facility_location

from scurate_policies.cluster import cluster_balance
from scurate_policies.facility import (
    facility_kcenter,
    facility_location,
    facility_run,
    objective_of,
)
from scurate_policies.kcenter import density, kcenter, kcenter_density
from scurate_policies.mix import DEPTH_DIVISOR, facility_density, interleave
from scurate_policies.reweight import reweight

Policy = Callable[[SelectionContext, int], NDArray[np.int64]]


def blobs(seed: int = 0, n: int = 3000) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Gaussian types of very different sizes, plus 30 lone outliers far from all (type -1)."""
    rng = np.random.default_rng(seed)
    sizes = np.array([1200, 800, 500, 300, 100, 40, 30])
    sizes = (sizes * (n - 30) / sizes.sum()).astype(int)
    centers = rng.normal(scale=6.0, size=(len(sizes), 8))
    x = np.concatenate([c + rng.normal(size=(s, 8)) for c, s in zip(centers, sizes, strict=True)])
    labels = np.repeat(np.arange(len(sizes)), sizes)
    outliers = rng.normal(scale=25.0, size=(30, 8))
    return (
        np.concatenate([x, outliers]).astype(np.float32),
        np.concatenate([labels, np.full(30, -1)]).astype(np.int64),
    )


def context(seed: int, params: dict[str, str] | None = None, n: int = 3000) -> SelectionContext:
    x, labels = blobs(0, n)
    manifest = pl.DataFrame({"row": np.arange(len(x)), "kind": labels.astype(str)})
    return SelectionContext(x, manifest, np.random.default_rng(seed), params=dict(params or {}))


RUNS: list[tuple[Policy, dict[str, str]]] = [
    (facility_location, {"sample": "64"}),
    (facility_kcenter, {"sample": "64"}),
    (kcenter_density, {}),
    (facility_density, {"sample": "64"}),
    (facility_density, {"sample": "64", "far_sample": "700", "share": "0.3"}),
    (cluster_balance, {"clusters": "12"}),
]


@pytest.mark.parametrize(("policy", "params"), RUNS)
def test_prefix_ordered_seeded_and_spread(policy: Policy, params: dict[str, str]) -> None:
    big = policy(context(3, params), 400)
    small = policy(context(3, params), 90)
    np.testing.assert_array_equal(big[:90], small)
    assert big.dtype == np.int64 and len(set(big.tolist())) == 400
    np.testing.assert_array_equal(policy(context(3, params), 400), big)
    others = [policy(context(seed, params), 90) for seed in (4, 5, 6)]
    assert all(len(set(o.tolist()) ^ set(small.tolist())) > 0 for o in others)


def test_facility_sample_all_is_the_exact_greedy_for_every_seed() -> None:
    exact = [facility_location(context(s, {"sample": "all"}), 150) for s in (1, 2)]
    np.testing.assert_array_equal(exact[0], exact[1])
    ctx = context(1, {"sample": "64"})
    stochastic = facility_location(ctx, 150)
    assert ctx.info["sample"] == 64 and not np.array_equal(stochastic, exact[0])
    best = context(1, {"sample": "all"})
    facility_location(best, 150)
    assert ctx.info["objective"] >= 0.97 * best.info["objective"]
    with pytest.raises(OptionError, match=r"params\['sample'\]='some': expected a positive"):
        facility_location(context(1, {"sample": "some"}), 5)


def test_facility_kcenter_is_facility_then_farthest_first() -> None:
    params = {"sample": "64", "switch": "0.6"}
    ctx = context(7, params)
    order = facility_kcenter(ctx, 600)
    cut = ctx.info["representatives"]
    assert 0 < cut < 600
    alone = facility_location(context(7, {"sample": "64"}), cut)
    np.testing.assert_array_equal(order[:cut], alone)
    rest, _ = farthest_first(ctx.embeddings, 600 - cut, initial=alone)
    np.testing.assert_array_equal(order[cut:], rest)
    curve = context(7, {"sample": "64"})
    facility_location(curve, cut + 1)
    gains = np.diff(curve.info["objective_curve"], prepend=0.0)
    assert (gains[:cut] >= 0.6 * gains[0]).all() and gains[cut] < 0.6 * gains[0]
    # switch 0: facility alone
    np.testing.assert_array_equal(
        facility_kcenter(context(7, {"sample": "64", "switch": "0"}), 200),
        facility_location(context(7, {"sample": "64"}), 200),
    )
    with pytest.raises(OptionError, match=r"params\['switch'\]='-1': expected a number >= 0"):
        facility_kcenter(context(7, {"switch": "-1"}), 5)


def test_kcenter_density_leaves_lone_outliers_late() -> None:
    _, labels = blobs(0)
    plain = kcenter(context(2), 60)
    assert (labels[plain] == -1).sum() >= 25  # plain farthest-first spends its picks on them
    weighted = kcenter_density(context(2, {"exponent": "1"}), 60)
    assert (labels[weighted] == -1).sum() == 0
    assert set(labels[weighted].tolist()) == set(range(7))  # every real type, none missed
    default = kcenter_density(context(2), 60)  # exponent 0.5: outliers later than plain's
    first_outlier = np.flatnonzero(labels[default] == -1)[0]
    assert first_outlier > np.flatnonzero(labels[plain] == -1)[0] + 2
    ctx = context(2, {"exponent": "0"})  # no weight: plain kcenter
    np.testing.assert_array_equal(kcenter_density(ctx, 60), plain)
    assert ctx.info["density_from"] == "neighbors" and ctx.info["exponent"] == 0.0
    with pytest.raises(OptionError, match=r"params\['exponent'\]='x': expected a number >= 0"):
        kcenter_density(context(2, {"exponent": "x"}), 5)


def test_kcenter_density_reads_the_manifest_density() -> None:
    ctx = context(2, {"exponent": "1"})
    density = np.ones(ctx.n_cells, dtype=np.float32)
    density[:100] = 50.0  # the first 100 cells weigh so much that they come first
    ctx.manifest = ctx.manifest.with_columns(density=pl.Series(density))
    order = kcenter_density(ctx, 40)
    assert ctx.info["density_from"] == "manifest"
    assert (order[1:30] < 100).all()
    ctx = context(2)
    ctx.covered = np.ones(ctx.n_cells, dtype=np.float32)
    with pytest.raises(OptionError, match="does not take --reference"):
        kcenter_density(ctx, 5)


def traversal_by_hand(
    seed: int, sample: int, picks: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The sample and the traversal facility_density runs over it, rebuilt from the same rng
    stream: facility's seed, then the sample, then the traversal's first cell."""
    ctx = context(seed)
    rng = np.random.default_rng(seed)
    rng.integers(2**63)
    rows = np.sort(rng.choice(ctx.n_cells, sample, replace=False))
    first = int(rng.integers(sample))
    weights = (density(ctx).astype(np.float64) ** 0.5)[rows].astype(np.float32)
    far, _ = farthest_first(ctx.embeddings[rows], picks, first=first, weights=weights)
    return rows, rows[far]


def test_facility_density_takes_the_two_lists_in_turn() -> None:
    seed, budget = 8, 120
    ctx = context(seed, {"sample": "64", "far_sample": "900"})
    order = facility_density(ctx, budget)
    rep = facility_location(context(seed, {"sample": "64"}), budget)
    # the traversal read no deeper than its turns: half the budget
    rows, far = traversal_by_hand(seed, 900, budget // 2)
    np.testing.assert_array_equal(order, interleave(rep, far, 0.5, budget))
    assert ctx.info["far_sample"] == 900 and ctx.info["exponent"] == 0.5
    assert set(order[1::2].tolist()) <= set(rows.tolist())  # every second pick: the sample's
    # share 0: facility alone; share 1: the traversal alone, over every cell where the pool
    # is smaller than the sample (and the budget under an eighth of it)
    np.testing.assert_array_equal(
        facility_density(context(seed, {"sample": "64", "share": "0"}), budget), rep
    )
    whole = context(seed, {"sample": "64", "share": "1"})
    alone = facility_density(whole, budget)
    assert whole.info["far_sample"] == whole.n_cells
    rng = np.random.default_rng(seed)
    rng.integers(2**63)
    weights = (density(context(seed)).astype(np.float64) ** 0.5).astype(np.float32)
    far, _ = farthest_first(
        whole.embeddings, budget, first=int(rng.integers(whole.n_cells)), weights=weights
    )
    np.testing.assert_array_equal(alone, far)


def test_facility_density_reads_the_traversal_an_eighth_of_its_sample_deep() -> None:
    seed, budget = 3, 160
    ctx = context(seed, {"sample": "64", "far_sample": "400"})
    order = facility_density(ctx, budget)
    assert ctx.info["far_picks"] == 400 // DEPTH_DIVISOR < budget // 2
    rep = facility_location(context(seed, {"sample": "64"}), budget)
    # its first 50 turns are the traversal's, every turn after them facility location's
    _, far = traversal_by_hand(seed, 400, 50)
    np.testing.assert_array_equal(order, interleave(rep, far, 0.5, budget))
    assert len(np.unique(order)) == budget


def test_facility_density_asks_facility_only_for_the_picks_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed, budget = 5, 200
    rep = facility_location(context(seed, {"sample": "64"}), budget)
    _, far = traversal_by_hand(seed, 2000, budget // 2)
    expected = interleave(rep, far, 0.5, budget)
    # facility's greedy is a prefix of any longer run: its shorter run gives the same order
    params = {"sample": "64", "far_sample": "2000"}
    ctx = context(seed, params)
    np.testing.assert_array_equal(facility_density(ctx, budget), expected)
    assert ctx.info["facility_picks"] == budget - 100 + 25 < budget
    # with no slack, a traversal row facility picked too leaves it short: it runs again, whole
    overlap = len(set(rep[: budget - 100].tolist()) & set(far.tolist()))
    assert overlap > 0
    monkeypatch.setattr("scurate_policies.mix.OVERLAP_SHARE", 0.0)
    ctx = context(seed, params)
    np.testing.assert_array_equal(facility_density(ctx, budget), expected)
    assert ctx.info["facility_picks"] == budget


def test_facility_density_records_the_objective_of_its_own_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = context(4, {"sample": "64"})
    picks, objective, graph = facility_run(ctx, 150)
    np.testing.assert_allclose(objective_of(graph, picks), objective, rtol=1e-6)
    with monkeypatch.context() as patch:  # picks read a block at a time: the same curve
        patch.setattr("scurate_policies.facility.OBJECTIVE_BLOCK", 7)
        np.testing.assert_allclose(objective_of(graph, picks), objective, rtol=1e-6)
        heavy = graph.copy()  # any nonnegative weights, not only similarities in [0, 1]
        heavy.data = heavy.data * np.float32(7.0)
        order7, objective7 = greedy_facility_location(
            heavy.indptr, heavy.indices, heavy.data, 100, sample=64, seed=1
        )
        np.testing.assert_allclose(objective_of(heavy, order7), objective7, rtol=1e-6)
    assert objective_of(graph, picks[:0]).dtype == np.float64 and not len(objective_of(graph, []))
    mixed = context(4, {"sample": "64"})
    order = facility_density(mixed, 150)
    curve = np.asarray(mixed.info["objective_curve"])
    np.testing.assert_allclose(curve, objective_of(graph, order), rtol=1e-6)
    assert len(curve) == 150 and (np.diff(curve) >= 0).all()
    assert curve[-1] <= objective[-1] <= mixed.info["objective_max"]  # facility's own is best
    assert mixed.info["objective"] == curve[-1]


def test_facility_density_reaches_the_small_types_facility_leaves_out() -> None:
    _, labels = blobs(0)
    types = set(range(7))
    rep = facility_location(context(2, {"sample": "64"}), 100)
    assert 6 not in labels[rep]  # 30 cells of 3,000: facility's hubs are elsewhere
    mixed = facility_density(context(2, {"sample": "64"}), 60)
    assert types <= set(labels[mixed].tolist())
    small = facility_density(context(2, {"sample": "64"}), 14)
    rep = facility_location(context(2, {"sample": "64"}), 14)
    assert len(types & set(labels[small].tolist())) > len(types & set(labels[rep].tolist()))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"share": "1.5"}, r"params\['share'\]=1.5: expected a fraction between 0 and 1"),
        ({"share": "-1"}, r"params\['share'\]='-1': expected a number >= 0"),
        ({"far_sample": "0"}, r"params\['far_sample'\]='0': expected a positive integer"),
        ({"far_sample": "some"}, r"params\['far_sample'\]='some': expected a positive integer"),
    ],
)
def test_facility_density_refuses_bad_params(params: dict[str, str], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        facility_density(context(1, params), 5)


def test_facility_density_with_a_reference_is_facility() -> None:
    ctx = context(1, {"sample": "64"})
    covered = np.full(ctx.n_cells, 0.5, dtype=np.float32)
    ctx.covered = covered
    alone = context(1, {"sample": "64"})
    alone.covered = covered
    np.testing.assert_array_equal(facility_density(ctx, 50), facility_location(alone, 50))
    assert ctx.info["traversal"].startswith("none: with --reference")


def test_interleave_passes_over_rows_taken_and_gives_turns_to_the_first_list() -> None:
    a = np.array([0, 1, 2, 3, 4, 5])
    b = np.array([1, 7, 0, 9])
    # turn 5 is b's, but its row 0 is taken: a's next instead
    np.testing.assert_array_equal(interleave(a, b, 0.5, 8), [0, 1, 2, 7, 3, 4, 5, 9])
    np.testing.assert_array_equal(interleave(a, b, 0.0, 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(interleave(a, b[:1], 1.0, 3), [1, 0, 2])
    with pytest.raises(ValueError, match="interleave: 4 distinct rows for a budget of 8"):
        interleave(a[:3], b, 0.5, 8)


def test_embedding_rows_reads_only_the_rows_asked_for() -> None:
    x, _ = blobs(0, 600)  # 596 rows
    rows = np.array([5, 2, 595, 2])
    held = SelectionContext(x, pl.DataFrame({"row": np.arange(596)}), np.random.default_rng(0))
    np.testing.assert_array_equal(held.embedding_rows(rows), x[rows])
    pool_rows = np.arange(100, 596)
    lazy = SelectionContext(
        Rows(x, pool_rows),
        Rows(pl.DataFrame({"row": np.arange(596)}), pool_rows),
        np.random.default_rng(0),
    )
    some = np.array([5, 2, 400, 2])
    np.testing.assert_array_equal(lazy.embedding_rows(some), x[pool_rows[some]])
    assert isinstance(lazy._embeddings, Rows)  # the whole embedding not taken


def test_cluster_balance_water_fills_the_clusters() -> None:
    ctx = context(5, {"clusters": "20"})
    order = cluster_balance(ctx, 800)
    table = ctx.info["clusters"]
    assert sum(c["pool"] for c in table) == ctx.n_cells
    assert sum(c["selected"] for c in table) == 800
    cut = [c["selected"] for c in table if c["selected"] < c["pool"]]
    whole = [c["pool"] for c in table if c["selected"] == c["pool"]]
    assert cut and whole and max(cut) - min(cut) <= 1  # one water level
    assert max(whole) <= max(cut)  # every cluster below the level is taken whole
    assert len(order) == 800
    _, labels = blobs(0)  # every planted type is represented, the largest below its share
    assert set(labels[order].tolist()) == set(labels.tolist())
    assert (labels[order] == 0).sum() < 800 * (labels == 0).mean()
    with pytest.raises(OptionError, match=r"params\['clusters'\]='0': expected a positive"):
        cluster_balance(context(5, {"clusters": "0"}), 5)
    tiny = context(5, {"clusters": "9999"}, n=60)  # more clusters than cells: one cell each
    assert sorted(cluster_balance(tiny, tiny.n_cells).tolist()) == list(range(tiny.n_cells))


def test_reweight_and_column_read_obs_where_the_manifest_has_none() -> None:
    ctx = context(1)
    kinds = ctx.manifest["kind"]
    ctx.manifest = ctx.manifest.drop("kind").with_columns(cell_type=pl.lit(None, pl.String))
    with pytest.raises(OptionError, match="not a manifest column nor an obs column"):
        reweight(SelectionContext(ctx.embeddings, ctx.manifest, ctx.rng, {"label": "kind"}), 5)
    asked: list[str] = []

    def obs(name: str) -> pl.Series | None:
        asked.append(name)
        return kinds.alias(name) if name in ("kind", "cell_type") else None

    ctx.obs = obs
    assert ctx.column("row") is not None and asked == []  # a filled manifest column
    assert ctx.column("missing") is None
    np.testing.assert_array_equal(ctx.column("cell_type").to_numpy(), kinds.to_numpy())
    ctx.params = {"label": "kind"}
    order = reweight(ctx, 240)
    assert {t["type"] for t in ctx.info["types"]} == set(kinds.unique().to_list())
    picked = kinds.to_numpy()[order]
    assert (picked == "-1").sum() == 30  # the rarest type (30 outliers) is taken whole


def test_obs_reader_maps_pool_rows_to_their_sources() -> None:
    sources = [
        SimpleNamespace(dataset_id="a", read_obs=lambda: pd.DataFrame({"batch": ["x", "y", None]})),
        SimpleNamespace(dataset_id="b", read_obs=lambda: pd.DataFrame({"other": [1, 2]})),
    ]
    manifest = pl.DataFrame({"dataset_id": ["b", "a", "a", "b"], "row": [1, 2, 0, 0]})
    read = obs_reader(sources, manifest)
    assert read("batch").to_list() == [None, None, "x", None]
    assert read("other").to_list() == ["2", None, None, "1"]
    assert read("nothing") is None


def test_facility_counts_a_reference_corpus_as_covered() -> None:
    """With ``covered``, types the corpus already has (distance 0 to it) gain nothing from a
    pick: facility spends the budget on the types the corpus lacks, and its ceiling is what the
    corpus leaves to cover."""
    x, labels = blobs(0)
    known = np.isin(labels, [0, 1, 2])  # the three largest types are in the corpus
    covered = np.where(known, 0.0, 50.0).astype(np.float32)
    manifest = pl.DataFrame({"row": np.arange(len(x))})
    ctx = SelectionContext(
        x, manifest, np.random.default_rng(0), params={"sample": "all"}, covered=covered
    )
    order = facility_location(ctx, 60)
    assert not known[order].any(), "no pick spent on what the corpus already covers"
    assert ctx.info["starts_from"] == "the reference corpus"
    assert ctx.info["objective_max"] == pytest.approx(float((~known).sum()), rel=1e-4)
    plain = SelectionContext(x, manifest, np.random.default_rng(0), params={"sample": "all"})
    assert known[facility_location(plain, 60)].sum() > 30  # without it, the big types first

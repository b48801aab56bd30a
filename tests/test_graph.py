"""The pool's neighbour lists: kept by scoring's one search, restricted to the cells a policy
sees, and read by facility location instead of a second search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scurate
from scurate._compute.graph import PoolGraph
from scurate._compute.scoring import neighbour_scores
from scurate._compute.weights import assign
from scurate._engine.context import SelectionContext
from scurate._engine.options import Quota
from scurate._engine.strata import run_stratified
from scurate._plugins.registry import Registered

from conftest import TYPES, make_adata, write_h5ad
from scurate_policies.facility import facility_location


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (12, 8))
    return (centres[rng.integers(0, 12, n)] + rng.normal(0, 1, (n, 8))).astype(np.float32)


def brute_others(x: np.ndarray, among: np.ndarray, width: int) -> list[list[int]]:
    """Each cell of ``among``'s nearest others within ``among`` (positions), by brute force."""
    pts = x[among].astype(np.float64)
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.inf)
    return [list(np.argsort(row, kind="stable")[:width]) for row in d2]


def test_scoring_keeps_each_cells_nearest_others_and_its_scores_do_not_change() -> None:
    x = clustered(1500)
    near = neighbour_scores(x)  # 1,500 cells: an exact flat search
    assert near.graph is not None and near.graph.width == 24
    want = brute_others(x, np.arange(len(x)), 24)
    assert [list(r) for r in near.graph.rows] == want
    d = np.sqrt(((x[:, None, :].astype(np.float64) - x[near.graph.rows]) ** 2).sum(axis=2))
    np.testing.assert_allclose(near.graph.dist, d, rtol=1e-6)
    narrow = neighbour_scores(x, graph_k=0)  # a search k + 1 wide, as before the graph
    np.testing.assert_array_equal(near.density, narrow.density)
    np.testing.assert_array_equal(near.nn_row, narrow.nn_row)
    np.testing.assert_array_equal(near.near_dup_group, narrow.near_dup_group)
    assert narrow.graph is not None and narrow.graph.width == 0


def test_restricted_lists_keep_only_the_cells_in_view_in_order() -> None:
    x = clustered(600, seed=1)
    graph = neighbour_scores(x).graph
    assert graph is not None
    rng = np.random.default_rng(2)
    for size in (420, 590):  # most lists cut short; most lists whole
        kept = np.sort(rng.choice(600, size, replace=False))
        view = graph.restricted(kept)
        dist, near = view.lists(15)
        position = {int(c): p for p, c in enumerate(kept)}
        for p, cell in enumerate(kept):
            in_view = [j for j, r in enumerate(graph.rows[cell]) if int(r) in position][:15]
            listed = [position[int(graph.rows[cell][j])] for j in in_view]
            assert list(near[p][: len(listed)]) == listed
            assert (near[p][len(listed) :] == -1).all() and np.isinf(dist[p][len(listed) :]).all()
            np.testing.assert_array_equal(dist[p][: len(listed)], graph.dist[cell][in_view])
    inner = np.arange(0, 420, 3)  # a stratum of the view: composes with the first restriction
    again = view.restricted(inner).lists(10)
    direct = graph.restricted(kept[inner]).lists(10)
    np.testing.assert_array_equal(again[1], direct[1])
    np.testing.assert_array_equal(again[0], direct[0])
    with pytest.raises(ValueError, match="hold 24 neighbours, 25 asked"):
        graph.lists(25)


def test_neighbor_graph_reads_the_pool_lists_or_searches_the_same() -> None:
    x = clustered(1200, seed=3)
    graph = neighbour_scores(x).graph
    manifest = pl.DataFrame({"cell_id": [str(i) for i in range(len(x))]})
    given = SelectionContext(x, manifest, np.random.default_rng(0), graph=graph)
    searched = SelectionContext(x, manifest, np.random.default_rng(0))
    for k in (1, 15, 24):
        a, b = given.neighbor_graph(k), searched.neighbor_graph(k)
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    wide = given.neighbor_graph(30)  # past the lists' width: a search
    assert wide[1].shape == (1200, 30) and (wide[1] >= 0).all()
    with pytest.raises(ValueError, match="between 0 and 1199"):
        given.neighbor_graph(1200)
    wrong = SelectionContext(x[:10], manifest[:10], np.random.default_rng(0), graph=graph)
    with pytest.raises(ValueError, match="covers 1200 cells, the context 10"):
        wrong.neighbor_graph(5)


def test_facility_from_the_pool_lists_picks_what_a_fresh_search_picks() -> None:
    x = clustered(1500, seed=4)
    graph = neighbour_scores(x).graph
    manifest = pl.DataFrame({"cell_id": [str(i) for i in range(len(x))]})
    orders = []
    for g in (graph, None):
        ctx = SelectionContext(x, manifest, np.random.default_rng(7), graph=g)
        orders.append(facility_location(ctx, 150))
        assert ctx.info["short_lists"] == 0
    np.testing.assert_array_equal(orders[0], orders[1])


@pytest.mark.parametrize(("copies", "source"), [(250, "the pool's lists"), (908, "a search")])
def test_select_reads_the_lists_unless_copies_cut_them_short(
    tmp_path: Path, programs: np.ndarray, copies: int, source: str
) -> None:
    """Through select: copies set aside shorten some lists, and where every cell has copies
    (the atlas deposited three times) most lists are short and the policy searches again. A
    rerun that reads the lists back from the work dir writes the same manifest."""
    rng = np.random.default_rng(5)
    atlas = make_adata(rng, programs, TYPES, [300, 200, 160, 240, 8], prefix="a")
    paths = [write_h5ad(atlas, tmp_path / "atlas.h5ad")]
    for again in ("re1", "re2"):
        copied = atlas[np.sort(rng.choice(atlas.n_obs, copies, replace=False))].copy()
        copied.obs_names = [f"{again}_{i}" for i in range(copies)]
        paths.append(write_h5ad(copied, tmp_path / f"{again}.h5ad"))
    work = tmp_path / "work"
    runs = [
        scurate.select_to_dir(
            paths, 120, policy="facility", out=tmp_path / out, work_dir=work, qc="off"
        )
        for out in ("a", "b")
    ]
    info = runs[0].report["policy_info"]
    assert info["neighbor_graph"].startswith(source)
    assert (info["short_lists"] > 0) == (source == "the pool's lists")
    assert not runs[0].report["work_dir"]["reused"] and runs[1].report["work_dir"]["reused"]
    a = (tmp_path / "a" / "manifest.parquet").read_bytes()
    assert a == (tmp_path / "b" / "manifest.parquet").read_bytes()


def test_weights_from_the_lists_match_an_exact_search() -> None:
    """Where the search of the pool against the selection is approximate, cells that list a
    selected neighbour take it from the lists; with exact lists that is the nearest selected
    cell, so weights, distances and the covering radius equal an exact search's."""
    x = clustered(2000, seed=6)
    graph = neighbour_scores(x).graph  # 2,000 cells: exact lists
    selected = np.random.default_rng(0).choice(2000, 150, replace=False)
    exact = assign(x, selected, exact=True)
    listed = assign(x, selected, exact=False, graph=graph)
    assert not listed.exact
    np.testing.assert_allclose(listed.distance, exact.distance, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(listed.weights(150), exact.weights(150))
    assert listed.covering_radius(x, selected) == pytest.approx(exact.covering_radius(x, selected))
    short = PoolGraph(graph.rows[:, :2], graph.dist[:, :2])  # few hits: most cells searched
    np.testing.assert_array_equal(
        assign(x, selected, exact=False, graph=short).weights(150), exact.weights(150)
    )


def test_each_stratum_sees_its_rows_of_the_reference_coverage_and_the_lists() -> None:
    """A policy run inside a stratum gets that stratum's slice of ``covered`` (the distance to
    the reference corpus) and of the neighbour lists, renumbered to its rows."""
    group = np.where(np.arange(900) % 3 == 0, "a", "b")
    x = clustered(900, seed=8) + np.where(group == "a", 0.0, 100.0)[:, None].astype(np.float32)
    graph = neighbour_scores(x).graph  # two blobs far apart: each cell's lists stay in its own
    assert graph is not None
    manifest = pl.DataFrame({"cell_id": [str(i) for i in range(900)], "lab": group})
    covered = np.arange(900, dtype=np.float32)
    seen: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def record(ctx: SelectionContext, budget: int) -> np.ndarray:
        assert ctx.covered is not None
        seen[ctx.n_cells] = (ctx.covered.copy(), ctx.neighbor_graph(10)[1])
        assert ctx.info["neighbor_graph"] == "the pool's lists"
        return np.arange(budget)

    ctx = SelectionContext(x, manifest, np.random.default_rng(0), covered=covered, graph=graph)
    run_stratified(
        Registered("record", "test", record), ctx, 90, columns=["lab"], quota=Quota("equal")
    )
    for members in (np.flatnonzero(group == "a"), np.flatnonzero(group == "b")):
        got_covered, got_lists = seen[len(members)]
        np.testing.assert_array_equal(got_covered, covered[members])
        want = graph.restricted(members).lists(10)[1]
        np.testing.assert_array_equal(got_lists, want)

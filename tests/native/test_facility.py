"""The native lazy-greedy facility location against a plain dense greedy in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scurate import _core


def random_graph(rng: np.random.Generator, n: int, k: int) -> sp.csr_matrix:
    """A kNN-like sparse similarity: row j = the cells candidate j covers, self-similarity 1."""
    x = rng.normal(size=(n, 3))
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    near = np.argsort(d2, axis=1)[:, 1 : k + 1]
    rows = np.repeat(np.arange(n), k)
    sim = np.exp(-d2[rows, near.ravel()])
    covers = sp.coo_matrix((sim, (near.ravel(), rows)), shape=(n, n)).tocsr()  # row j covers i
    return (covers + sp.identity(n, format="csr")).tocsr()


def reference(graph: sp.csr_matrix, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain greedy: every gain recomputed at every step; ties to the lowest row."""
    dense = graph.toarray().astype(np.float32).astype(np.float64)  # dense[j, i] = sim(i, j)
    best = np.zeros(dense.shape[0])
    order, objective = [], []
    taken = np.zeros(dense.shape[0], dtype=bool)
    for _ in range(budget):
        gains = np.maximum(dense - best[None, :], 0).sum(axis=1)
        gains[taken] = -1
        j = int(np.argmax(gains))
        order.append(j)
        taken[j] = True
        best = np.maximum(best, dense[j])
        objective.append(best.sum())
    return np.array(order), np.array(objective)


def arrays(graph: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        graph.indptr.astype(np.int64),
        graph.indices.astype(np.int64),
        graph.data.astype(np.float32),
    )


@pytest.mark.parametrize("seed", range(5))
def test_matches_the_plain_greedy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 300))
    graph = random_graph(rng, n, int(rng.integers(2, 12)))
    budget = n if seed == 0 else int(rng.integers(1, n))  # seed 0: past full coverage
    order, objective = _core.facility_location(*arrays(graph), budget)
    want_order, want_objective = reference(graph, budget)
    np.testing.assert_array_equal(order, want_order)
    np.testing.assert_allclose(objective, want_objective, rtol=1e-9)
    assert np.all(np.diff(objective) >= -1e-9)


def test_every_prefix_is_the_smaller_run() -> None:
    graph = random_graph(np.random.default_rng(9), 200, 6)
    big, _ = _core.facility_location(*arrays(graph), 150)
    small, _ = _core.facility_location(*arrays(graph), 40)
    np.testing.assert_array_equal(big[:40], small)


def test_bad_inputs_are_named() -> None:
    indptr, indices, values = arrays(random_graph(np.random.default_rng(1), 30, 3))
    with pytest.raises(TypeError, match="values: expected C-contiguous float32, got float64"):
        _core.facility_location(indptr, indices, values.astype(np.float64), 3)
    with pytest.raises(ValueError, match="budget: must be between 0 and the 30 rows, got 31"):
        _core.facility_location(indptr, indices, values, 31)
    bad = indices.copy()
    bad[5] = 30
    with pytest.raises(ValueError, match=r"indices\[5\] = 30 is outside 0..29"):
        _core.facility_location(indptr, bad, values, 3)
    neg = values.copy()
    neg[2] = -1
    with pytest.raises(ValueError, match=r"values\[2\] = -1.0+: expected finite and >= 0"):
        _core.facility_location(indptr, indices, neg, 3)
    with pytest.raises(ValueError, match="indptr\\[-1\\] = "):
        _core.facility_location(indptr[:-1], indices, values, 3)


MASK = (1 << 64) - 1


class SplitMix:
    """The kernel's splitmix64 stream, in Python."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK

    def below(self, m: int) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        return min(int((z >> 11) * 2.0**-53 * m), m - 1)


def stochastic_reference(
    graph: sp.csr_matrix, budget: int, sample: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each pick: a partial Fisher-Yates draw of ``sample`` unpicked rows, every gain computed,
    the best taken (ties to the lowest row); the picked row swapped to the pool's end."""
    dense = graph.toarray().astype(np.float32).astype(np.float64)
    n = dense.shape[0]
    pool, best, rng = list(range(n)), np.zeros(n), SplitMix(seed)
    order, objective = [], []
    for t in range(budget):
        remaining = n - t
        for i in range(min(sample, remaining)):
            r = i + rng.below(remaining - i)
            pool[i], pool[r] = pool[r], pool[i]
        drawn = pool[: min(sample, remaining)]
        gains = np.maximum(dense[drawn] - best[None, :], 0).sum(axis=1)
        top = gains.max()
        j = min(c for c, g in zip(drawn, gains, strict=True) if g == top)
        order.append(j)
        best = np.maximum(best, dense[j])
        objective.append(best.sum())
        at = pool.index(j)
        pool[at], pool[remaining - 1] = pool[remaining - 1], pool[at]
    return np.array(order), np.array(objective)


@pytest.mark.parametrize("seed", range(4))
def test_stochastic_greedy_matches_its_reference(seed: int) -> None:
    rng = np.random.default_rng(50 + seed)
    n = int(rng.integers(60, 250))
    graph = random_graph(rng, n, int(rng.integers(2, 10)))
    budget, sample = int(rng.integers(1, n)), int(rng.integers(1, 40))
    order, objective = _core.facility_location(
        *arrays(graph), budget, sample=sample, seed=1234 + seed
    )
    want_order, want_objective = stochastic_reference(graph, budget, sample, 1234 + seed)
    np.testing.assert_array_equal(order, want_order)
    np.testing.assert_allclose(objective, want_objective, rtol=1e-9)


def test_stochastic_greedy_is_seeded_prefix_ordered_and_near_the_exact() -> None:
    graph = random_graph(np.random.default_rng(3), 600, 8)
    run = lambda budget, seed: _core.facility_location(  # noqa: E731
        *arrays(graph), budget, sample=64, seed=seed
    )
    big, big_objective = run(300, 7)
    small, _ = run(90, 7)
    np.testing.assert_array_equal(big[:90], small)
    np.testing.assert_array_equal(run(300, 7)[0], big)
    assert len(set(big.tolist())) == 300
    others = [run(90, seed)[0] for seed in range(8, 12)]
    assert all(not np.array_equal(o, small) for o in others)
    _, exact = _core.facility_location(*arrays(graph), 300)
    assert big_objective[-1] >= 0.97 * exact[-1]
    # a sample of the whole pool is the exact greedy
    whole, _ = _core.facility_location(*arrays(graph), 300, sample=600, seed=5)
    np.testing.assert_array_equal(whole, _core.facility_location(*arrays(graph), 300)[0])
    with pytest.raises(ValueError, match="sample: must be >= 0, got -1"):
        _core.facility_location(*arrays(graph), 3, sample=-1)


@pytest.mark.parametrize("sample", [0, 16])
def test_int32_indices_pick_as_int64_do(sample: int) -> None:
    indptr, indices, values = arrays(random_graph(np.random.default_rng(4), 400, 8))
    wide = _core.facility_location(indptr, indices, values, 120, sample=sample, seed=3)
    narrow = _core.facility_location(
        indptr, indices.astype(np.int32), values, 120, sample=sample, seed=3
    )
    np.testing.assert_array_equal(wide[0], narrow[0])
    np.testing.assert_array_equal(wide[1], narrow[1])
    bad = indices.astype(np.int32)
    bad[7] = -2
    with pytest.raises(ValueError, match=r"indices\[7\] = -2 is outside 0..399"):
        _core.facility_location(indptr, bad, values, 3)


def lists_by_sort(near: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, ...]:
    """The graph by candidate the plain way: every (covering, cell) entry, stably sorted."""
    n = len(near)
    keep = np.concatenate([np.ones((n, 1), dtype=bool), near >= 0], axis=1)
    covering = np.concatenate([np.arange(n)[:, None], near], axis=1)[keep]
    data = np.concatenate([np.ones((n, 1), np.float32), sim], axis=1)[keep]
    cell = np.repeat(np.arange(n), keep.sum(axis=1))
    order = np.argsort(covering, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(covering, minlength=n))])
    return indptr, cell[order], data[order]


@pytest.mark.parametrize("seed", range(4))
def test_covering_graph_is_the_sorted_transpose(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 500))
    k = int(rng.integers(0, 12))
    near = rng.integers(-1, n, size=(n, k)).astype(np.int32)  # -1: none; repeats allowed
    sim = rng.random((n, k)).astype(np.float32)
    got = _core.covering_graph(near, sim)
    want = lists_by_sort(near, sim)
    assert got[1].dtype == np.int32
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_covering_graph_bad_inputs_are_named() -> None:
    near = np.array([[1, -1], [0, 2], [1, 0]], dtype=np.int32)
    sim = np.full((3, 2), 0.5, dtype=np.float32)
    with pytest.raises(TypeError, match="near: expected C-contiguous int32, got int64"):
        _core.covering_graph(near.astype(np.int64), sim)
    with pytest.raises(ValueError, match="near and sim: expected the same shape"):
        _core.covering_graph(near, sim[:, :1].copy())
    out = near.copy()
    out[2, 1] = 3
    with pytest.raises(ValueError, match=r"near\[2, 1\] = 3 is outside -1..2"):
        _core.covering_graph(out, sim)
    bad = sim.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"sim\[1, 0\] = nan: expected finite and >= 0"):
        _core.covering_graph(near, bad)
    skipped = sim.copy()
    skipped[0, 1] = np.nan  # under a -1: never read
    _core.covering_graph(near, skipped)

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

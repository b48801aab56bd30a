"""The native k-center against a plain numpy farthest-first traversal."""

from __future__ import annotations

import numpy as np
import pytest
from scurate import _core


def reference_kcenter(
    x: np.ndarray, budget: int, initial: np.ndarray | None = None, first: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """O(n * budget) farthest-first traversal in float64; ties to the lowest row."""
    x64 = x.astype(np.float64)
    d2 = np.full(len(x), np.inf)
    for r in [] if initial is None else initial:
        d2 = np.minimum(d2, ((x64 - x64[r]) ** 2).sum(1))
    if initial is not None:
        d2[initial] = -1.0
    order, radii = [], []
    for t in range(budget):
        p = first if t == 0 and (initial is None or len(initial) == 0) else int(np.argmax(d2))
        d2 = np.minimum(d2, ((x64 - x64[p]) ** 2).sum(1))
        d2[p] = -1.0
        order.append(p)
        radii.append(np.sqrt(max(d2.max(), 0.0)))
    return np.array(order, dtype=np.int64), np.array(radii)


def clustered(rng: np.random.Generator, n: int, dim: int, n_clusters: int) -> np.ndarray:
    centers = rng.normal(scale=5.0, size=(n_clusters, dim))
    sizes = rng.dirichlet(np.full(n_clusters, 0.5))
    labels = rng.choice(n_clusters, size=n, p=sizes)
    scales = rng.uniform(0.2, 1.5, size=n_clusters)[labels, None]
    return (centers[labels] + rng.normal(size=(n, dim)) * scales).astype(np.float32)


@pytest.mark.parametrize("seed", range(12))
def test_matches_numpy_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, dim = int(rng.integers(200, 3000)), int(rng.integers(2, 40))
    x = clustered(rng, n, dim, int(rng.integers(1, 30)))
    budget = int(rng.integers(1, min(n, 300)))
    first = int(rng.integers(n))
    order, radii = _core.kcenter(x, budget, first=first)
    ref_order, ref_radii = reference_kcenter(x, budget, first=first)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(radii, ref_radii, rtol=1e-9)
    assert np.all(np.diff(radii) <= 0), "the covering radius never grows"


@pytest.mark.parametrize("dim", [16, 50, 130])
def test_noise_near_ties_and_huge_values_match_the_reference(dim: int) -> None:
    # noise in many dimensions: no pruning, every row's distance to each new center computed
    rng = np.random.default_rng(dim)
    x = rng.normal(size=(1200, dim)).astype(np.float32)
    order, radii = _core.kcenter(x, 150, first=4)
    ref_order, ref_radii = reference_kcenter(x, 150, first=4)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(radii, ref_radii, rtol=1e-9)
    # rows a few parts in a million nearer one of two centers than the other
    half = 125.0  # halfway between the centers at 0 and 250 on the first axis
    near = np.zeros((400, dim), dtype=np.float32)
    near[:, 0] = half * (1.0 + rng.uniform(-2e-6, 2e-6, 400))
    near[:, 1:] = rng.normal(size=(400, dim - 1))
    centers = np.zeros((2, dim), dtype=np.float32)
    centers[1, 0] = 2 * half
    x = np.concatenate([centers, near])
    order, radii = _core.kcenter(x, 60, initial=np.array([0], dtype=np.int64))
    ref_order, ref_radii = reference_kcenter(x, 60, initial=np.array([0]))
    assert order[0] == 1
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(radii, ref_radii, rtol=1e-9)
    # squares past float's range: distances are summed in double
    x = (rng.normal(size=(300, dim)) * 1e19).astype(np.float32)
    order, radii = _core.kcenter(x, 40, first=0)
    ref_order, ref_radii = reference_kcenter(x, 40, first=0)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(radii, ref_radii, rtol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_initial_rows_count_as_covered(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    x = clustered(rng, 1500, 8, 12)
    initial = rng.choice(1500, size=int(rng.integers(1, 40)), replace=False).astype(np.int64)
    order, radii = _core.kcenter(x, 100, initial=initial)
    ref_order, ref_radii = reference_kcenter(x, 100, initial=initial)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(radii, ref_radii, rtol=1e-9)
    assert not set(order) & set(initial)


def test_duplicated_rows_and_ties_go_to_the_lowest_index() -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(size=(50, 4)).astype(np.float32)
    x = np.concatenate([base, base, base[:10]])  # every row has copies
    order, radii = _core.kcenter(x, len(x), first=5)
    ref_order, ref_radii = reference_kcenter(x, len(x), first=5)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(radii, ref_radii, rtol=1e-9, atol=1e-12)
    assert sorted(order) == list(range(len(x)))
    assert radii[-1] == 0.0


def test_prefix_is_the_smaller_selection() -> None:
    x = clustered(np.random.default_rng(3), 2000, 10, 20)
    big, _ = _core.kcenter(x, 200, first=11)
    small, _ = _core.kcenter(x, 50, first=11)
    np.testing.assert_array_equal(big[:50], small)


def test_bad_inputs_name_the_argument() -> None:
    x = np.zeros((10, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="x: expected C-contiguous float32, got float64"):
        _core.kcenter(x.astype(np.float64), 2)
    with pytest.raises(TypeError, match="not contiguous: use np.ascontiguousarray"):
        _core.kcenter(np.zeros((3, 10), dtype=np.float32).T, 2)
    with pytest.raises(ValueError, match="x: expected a 2-D array, got 1-D"):
        _core.kcenter(np.zeros(10, dtype=np.float32), 2)
    with pytest.raises(ValueError, match="budget: 11 is more than the 10 rows"):
        _core.kcenter(x, 11)
    with pytest.raises(ValueError, match="budget: must be >= 0"):
        _core.kcenter(x, -1)
    with pytest.raises(ValueError, match=r"initial\[1\] = 3 is repeated"):
        _core.kcenter(x, 2, initial=np.array([3, 3], dtype=np.int64))
    with pytest.raises(ValueError, match=r"initial\[0\] = 10 is out of range"):
        _core.kcenter(x, 2, initial=np.array([10], dtype=np.int64))
    with pytest.raises(TypeError, match="initial: expected C-contiguous int64"):
        _core.kcenter(x, 2, initial=np.array([1], dtype=np.int32))
    with pytest.raises(ValueError, match="first: 12 is out of range"):
        _core.kcenter(x, 2, first=12)
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="x: row 4 contains NaN or inf"):
        _core.kcenter(bad, 2)
    assert len(_core.kcenter(x, 0)[0]) == 0


def test_core_reports_its_build() -> None:
    assert isinstance(_core.has_cuda, bool)
    assert _core.max_threads() >= 1


def reference_weighted(
    x: np.ndarray,
    weights: np.ndarray,
    budget: int,
    initial: np.ndarray | None = None,
    first: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted farthest-first in float64: each pick maximizes w^2 d^2; ties to the lowest row."""
    x64, w2 = x.astype(np.float64), weights.astype(np.float64) ** 2
    d2 = np.full(len(x), np.inf)
    taken = np.zeros(len(x), dtype=bool)
    for r in [] if initial is None else initial:
        d2 = np.minimum(d2, ((x64 - x64[r]) ** 2).sum(1))
        taken[r] = True
    order, radii = [], []
    for t in range(budget):
        with np.errstate(invalid="ignore"):  # 0 * inf before the first pick; unused then
            score = np.where(taken, -np.inf, w2 * d2)
        p = first if t == 0 and (initial is None or len(initial) == 0) else int(np.argmax(score))
        d2 = np.minimum(d2, ((x64 - x64[p]) ** 2).sum(1))
        taken[p] = True
        order.append(p)
        left = np.where(taken, -np.inf, w2 * d2)
        radii.append(np.sqrt(max(left.max(), 0.0)) if (~taken).any() else 0.0)
    return np.array(order, dtype=np.int64), np.array(radii)


@pytest.mark.parametrize("seed", range(8))
def test_weighted_matches_numpy_reference(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    n, dim = int(rng.integers(200, 2500)), int(rng.integers(2, 30))
    x = clustered(rng, n, dim, int(rng.integers(1, 25)))
    weights = rng.uniform(0.1, 3.0, size=n).astype(np.float32)
    weights[rng.random(n) < 0.05] = 0.0  # rows that never win while others are left
    budget = int(rng.integers(1, min(n, 250)))
    initial = None
    if seed % 2:
        initial = rng.choice(n, size=int(rng.integers(1, 20)), replace=False).astype(np.int64)
    first = int(rng.integers(n))
    order, radii = _core.kcenter(x, budget, initial=initial, first=first, weights=weights)
    ref_order, ref_radii = reference_weighted(x, weights, budget, initial, first)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_allclose(radii, ref_radii, rtol=1e-9)


def test_weighted_with_copies_unit_weights_and_prefixes() -> None:
    rng = np.random.default_rng(8)
    base = rng.normal(size=(60, 5)).astype(np.float32)
    x = np.concatenate([base, base, base[:7]])
    weights = rng.uniform(0.5, 2.0, size=len(x)).astype(np.float32)
    order, _ = _core.kcenter(x, len(x), first=3, weights=weights)
    np.testing.assert_array_equal(order, reference_weighted(x, weights, len(x), first=3)[0])
    assert sorted(order) == list(range(len(x)))
    y = clustered(rng, 3000, 12, 15)
    ones = np.ones(len(y), dtype=np.float32)
    np.testing.assert_array_equal(
        _core.kcenter(y, 150, first=9, weights=ones)[0], _core.kcenter(y, 150, first=9)[0]
    )
    w = rng.uniform(0.2, 2.0, size=len(y)).astype(np.float32)
    big, _ = _core.kcenter(y, 300, first=9, weights=w)
    small, _ = _core.kcenter(y, 70, first=9, weights=w)
    np.testing.assert_array_equal(big[:70], small)


def test_bad_weights_are_named() -> None:
    x = np.zeros((10, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="weights: has 9 entries for 10 rows of x"):
        _core.kcenter(x, 2, weights=np.ones(9, dtype=np.float32))
    with pytest.raises(TypeError, match="weights: expected C-contiguous float32, got float64"):
        _core.kcenter(x, 2, weights=np.ones(10))
    bad = np.ones(10, dtype=np.float32)
    bad[6] = -1.0
    with pytest.raises(ValueError, match=r"weights\[6\] = -1.0+: expected finite and >= 0"):
        _core.kcenter(x, 2, weights=bad)

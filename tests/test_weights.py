"""Weights: pool cells per selected cell (Voronoi cell sizes), against a numpy reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scurate
from scurate._compute.weights import assign


@pytest.mark.parametrize("exact", [True, False])
def test_weights_match_numpy_and_sum_to_the_pool(exact: bool) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1500, 8)).astype(np.float32)
    selected = rng.choice(1500, size=60, replace=False).astype(np.int64)
    d2 = ((x[:, None, :].astype(np.float64) - x[selected][None]) ** 2).sum(-1)
    expected = np.bincount(d2.argmin(1), minlength=60)
    got = assign(x, selected, exact=exact)
    w = got.weights(60)
    assert w.sum() == 1500 and w.min() >= 1
    if exact:
        np.testing.assert_array_equal(w, expected)
        np.testing.assert_allclose(got.distance, np.sqrt(d2.min(1)), rtol=1e-4, atol=1e-4)
    else:  # HNSW: approximate, nearly always the same cell at this size
        assert np.abs(w - expected).sum() <= 0.02 * 1500
    assert got.summary(60)["sum"] == 1500


def test_manifest_weights(two_labs: list[Path]) -> None:
    sel = scurate.select(two_labs, 50, seed=1)
    chosen = sel.selected
    assert chosen["weight"].null_count() == 0 and chosen["weight"].min() >= 1
    assert chosen["weight"].sum() == sel.manifest.height
    assert sel.manifest.filter(~pl.col("selected"))["weight"].null_count() == 1548
    assert sel.report["weights"]["method"] == "exact (FAISS flat)"
    assert sel.report["weights"]["sum"] == 1598


@pytest.mark.parametrize("exact", [True, False])
def test_one_search_gives_the_exact_covering_radius(exact: bool) -> None:
    from scurate._compute.kernels import covering_radius

    rng = np.random.default_rng(11)
    centers = rng.normal(scale=6, size=(12, 8))
    x = (centers[rng.integers(0, 12, 4000)] + rng.normal(size=(4000, 8))).astype(np.float32)
    selected = rng.choice(4000, size=150, replace=False).astype(np.int64)
    got = assign(x, selected, exact=exact).covering_radius(x, selected)
    assert got == pytest.approx(covering_radius(x, selected), rel=1e-9)
    assert assign(x, np.arange(4000), exact=exact).covering_radius(x, np.arange(4000)) == 0.0

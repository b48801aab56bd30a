"""The native plaid grid covering against a numpy transcription of geosketch's gs_gap."""

from __future__ import annotations

import numpy as np
import pytest
from scurate import _core


def reference_boxes(x: np.ndarray, unit: float) -> np.ndarray:
    """geosketch's interval assignment: along each sorted axis a new interval starts at the
    first value beyond start + unit; a box is the tuple of intervals."""
    table = np.zeros(x.shape, dtype=np.int64)
    for d in range(x.shape[1]):
        values = x[:, d].astype(np.float64)
        start, interval = None, -1
        for row in np.argsort(values, kind="stable"):
            if start is None or start + unit < values[row]:
                start, interval = values[row], interval + 1
            table[row, d] = interval
    first: dict[tuple[int, ...], int] = {}
    return np.array([first.setdefault(tuple(r), len(first)) for r in table.tolist()])


@pytest.mark.parametrize("seed", range(5))
def test_boxes_match_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(400, 6)) * rng.uniform(0.2, 3, 6)).astype(np.float32)
    x[:20] = x[20:40]  # exact copies share a box
    for unit in (0.0, 0.3, 1.0, 4.0, 100.0):
        box, n_boxes = _core.grid_boxes(x, unit)
        want = reference_boxes(x, unit)
        np.testing.assert_array_equal(box, want)
        assert n_boxes == want.max() + 1


def test_covering_hits_the_target_and_is_that_grid() -> None:
    x = np.random.default_rng(3).normal(size=(3000, 8)).astype(np.float32)
    for target in (50, 300, 1000):
        box, n_boxes, unit = _core.grid_covering(x, target, alpha=0.1)
        assert target / 1.1 <= n_boxes <= target * 1.1
        np.testing.assert_array_equal(box, _core.grid_boxes(x, unit)[0])


def test_bad_inputs_are_named() -> None:
    x = np.zeros((10, 2), dtype=np.float32)
    with pytest.raises(TypeError, match="x: expected C-contiguous float32"):
        _core.grid_boxes(x.astype(np.float64), 1.0)
    with pytest.raises(ValueError, match="unit: must be finite and >= 0"):
        _core.grid_boxes(x, -1.0)
    with pytest.raises(ValueError, match="target: must be >= 1, got 0"):
        _core.grid_covering(x, 0)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        _core.grid_boxes(x, 1.0)

"""SelectionContext.neighbors and scurate._compute.faiss_index.knn: FAISS kNN against numpy."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scurate._compute.faiss_index import knn
from scurate._data import spill
from scurate._engine.context import SelectionContext


def brute(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.sqrt(((queries[:, None].astype(np.float64) - base[None]) ** 2).sum(-1))
    rows = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, rows, 1), rows


def test_context_neighbors_of_rows_and_points() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 7)).astype(np.float32)
    ctx = SelectionContext(x, pl.DataFrame({"row": range(600)}), rng)
    dist, rows = ctx.neighbors(np.arange(0, 600, 7), 5)
    want_d, want_r = brute(x, x[::7], 5)
    np.testing.assert_array_equal(rows, want_r)
    np.testing.assert_allclose(dist, want_d, rtol=1e-4, atol=1e-3)
    assert (rows[:, 0] == np.arange(0, 600, 7)).all() and np.allclose(dist[:, 0], 0, atol=1e-3)
    points = rng.normal(size=(20, 7))
    dist, rows = ctx.neighbors(points, 3)
    np.testing.assert_array_equal(rows, brute(x, points, 3)[1])
    with pytest.raises(ValueError, match="k: must be between 1 and the 600 cells, got 0"):
        ctx.neighbors([1, 2], 0)
    with pytest.raises(ValueError, match=r"queries: rows must be in 0..599"):
        ctx.neighbors([600], 2)
    with pytest.raises(ValueError, match="queries: expected 1-D integer rows or a 2-D array 7"):
        ctx.neighbors(np.zeros((2, 3)), 2)


def test_ivf_search_finds_nearly_all_true_neighbours() -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(8000, 6)) + rng.integers(0, 5, size=(8000, 1)) * 4).astype(np.float32)
    _, rows = knn(x, x[:300], 10, exact=False)
    _, want = brute(x, x[:300], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, want, strict=True)])
    assert recall > 0.95


def test_ivf_lists_made_to_size_hold_what_a_plain_add_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """build_index reserves each inverted list at its final length and adds with the lists it
    assigned (add_core); the index must equal one grown by FAISS's own add."""
    import faiss
    from scurate._compute.faiss_index import (
        KMEANS_ITERATIONS,
        TRAIN_PER_LIST,
        build_index,
        even_rows,
    )

    rng = np.random.default_rng(2)
    x = (rng.normal(size=(70_000, 6)) + rng.integers(0, 5, size=(70_000, 1)) * 4).astype(np.float32)
    added_with_lists: list[int] = []
    add_core = faiss.IndexIVFFlat.add_core

    def counted(self: object, n: int, *rest: object) -> None:
        added_with_lists.append(n)
        add_core(self, n, *rest)

    monkeypatch.setattr(faiss.IndexIVFFlat, "add_core", counted)
    built, _ = build_index(x, factory="IVF32,Flat")
    monkeypatch.undo()
    assert sum(added_with_lists) == len(x)  # the lists were made to size, then filled
    plain = faiss.index_factory(6, "IVF32,Flat", faiss.METRIC_L2)
    faiss.extract_index_ivf(plain).cp.niter = KMEANS_ITERATIONS
    plain.train(x[even_rows(len(x), TRAIN_PER_LIST * 32)])
    plain.nprobe = built.nprobe
    for start in range(0, len(x), spill.BLOCK_ROWS):  # the blocks build_index adds: the lists'
        plain.add(x[start : start + spill.BLOCK_ROWS])  # assignment is a BLAS product per block
    assert built.ntotal == plain.ntotal == len(x)
    ours, theirs = built.invlists, plain.invlists
    for number in range(32):
        size = ours.list_size(number)
        assert size == theirs.list_size(number)
        got = faiss.rev_swig_ptr(ours.get_ids(number), size)
        want = faiss.rev_swig_ptr(theirs.get_ids(number), size)
        assert np.array_equal(got, want)  # the same rows, in the order they were added
    d_ours, r_ours = built.search(x[:500], 10)
    d_plain, r_plain = plain.search(x[:500], 10)
    assert np.array_equal(r_ours, r_plain) and np.array_equal(d_ours, d_plain)

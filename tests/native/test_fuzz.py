"""Every native kernel against its numpy reference on shapes and values hypothesis draws.

Shapes run down to one row, one column and empty selections; values are drawn from small grids
of exactly representable numbers, so that ties and duplicate rows are common and every sum is
exact in both the kernel and the reference (ties then go the same way in both). The examples
are few and derandomized, so the suite is fast and gives the same cases on every run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.sparse.csgraph import connected_components
from scurate import _core

from native.test_facility import reference as reference_facility
from native.test_kcenter import reference_kcenter
from native.test_scoring_kernels import reference_covered, reference_summary
from native.test_sketch import reference_boxes

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# coordinates on a grid of halves: sums of squares are exact in float32 and float64
GRID = st.integers(-6, 6).map(lambda v: v / 2)


@st.composite
def embeddings(draw: st.DrawFn, min_rows: int = 1, max_rows: int = 60) -> np.ndarray:
    n = draw(st.integers(min_rows, max_rows))
    d = draw(st.integers(1, 6))
    x = draw(hnp.arrays(np.float32, (n, d), elements=GRID))
    if n > 1 and draw(st.booleans()):  # duplicate rows
        src = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n))
        dst = draw(st.lists(st.integers(0, n - 1), min_size=len(src), max_size=len(src)))
        x[dst] = x[src]
    return x


@FUZZ
@given(x=embeddings(), data=st.data())
def test_kcenter(x: np.ndarray, data: st.DataObject) -> None:
    n = len(x)
    if data.draw(st.booleans(), "with initial"):
        initial = np.array(
            data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True)),
            dtype=np.int64,
        )
        budget = data.draw(st.integers(0, n - len(initial)), "budget")
        order, radii = _core.kcenter(x, budget, initial=initial)
        want_order, want_radii = reference_kcenter(x, budget, initial=initial)
        assert not set(order.tolist()) & set(initial.tolist())
    else:
        budget = data.draw(st.integers(0, n), "budget")
        first = data.draw(st.integers(0, n - 1), "first")
        order, radii = _core.kcenter(x, budget, first=first)
        want_order, want_radii = reference_kcenter(x, budget, first=first)
    assert order.dtype == np.int64 and radii.dtype == np.float64
    np.testing.assert_array_equal(order, want_order)
    np.testing.assert_allclose(radii, want_radii, rtol=1e-9, atol=1e-12)


@FUZZ
@given(x=embeddings(), data=st.data())
def test_kcenter_covered(x: np.ndarray, data: st.DataObject) -> None:
    n = len(x)
    covered = data.draw(
        hnp.arrays(
            np.float32,
            n,
            elements=st.one_of(st.integers(0, 8).map(float), st.just(np.inf)),
        ),
        "covered",
    )
    budget = data.draw(st.integers(0, n), "budget")
    order, radii = _core.kcenter_covered(x, covered, budget)
    want_order, want_radii = reference_covered(x, covered, budget)
    np.testing.assert_array_equal(order, want_order.astype(np.int64))
    np.testing.assert_allclose(radii, want_radii, rtol=1e-9, atol=1e-12)


@st.composite
def similarity_graphs(draw: st.DrawFn) -> sp.csr_matrix:
    """Row j lists the cells candidate j covers; eighths, so every gain is an exact sum."""
    n = draw(st.integers(1, 30))
    dense = draw(hnp.arrays(np.float32, (n, n), elements=st.integers(0, 8).map(lambda v: v / 8)))
    sparsity = draw(hnp.arrays(np.bool_, (n, n)))
    dense[sparsity] = 0
    return sp.csr_matrix(dense)


@FUZZ
@given(graph=similarity_graphs(), data=st.data())
def test_facility_location(graph: sp.csr_matrix, data: st.DataObject) -> None:
    n = graph.shape[0]
    budget = data.draw(st.integers(0, n), "budget")
    indptr, indices = graph.indptr.astype(np.int64), graph.indices.astype(np.int64)
    order, objective = _core.facility_location(indptr, indices, graph.data, budget)
    want_order, want_objective = reference_facility(graph, budget)
    np.testing.assert_array_equal(order, want_order.astype(np.int64))
    np.testing.assert_allclose(objective, want_objective, rtol=1e-12)


@FUZZ
@given(x=embeddings(max_rows=80), unit=st.integers(0, 12).map(lambda v: v / 4))
def test_grid_boxes(x: np.ndarray, unit: float) -> None:
    box, n_boxes = _core.grid_boxes(x, unit)
    want = reference_boxes(x, unit)
    np.testing.assert_array_equal(box, want)
    assert n_boxes == want.max() + 1


@FUZZ
@given(x=embeddings(max_rows=80), data=st.data())
def test_grid_covering_is_the_grid_of_its_side(x: np.ndarray, data: st.DataObject) -> None:
    target = data.draw(st.integers(1, len(x) + 2), "target")
    box, n_boxes, unit = _core.grid_covering(x, target, alpha=0.1, max_iter=30)
    assert unit >= 0
    np.testing.assert_array_equal(box, reference_boxes(x, unit))
    assert n_boxes == box.max() + 1


VALUE_TYPES = (np.float32, np.float64, np.int16, np.int32, np.int64, np.uint16, np.uint32)


@st.composite
def count_chunks(draw: st.DrawFn) -> tuple[sp.csr_matrix, np.ndarray]:
    n = draw(st.integers(0, 25))
    genes = draw(st.integers(1, 12))
    dtype = draw(st.sampled_from(VALUE_TYPES))
    signed = np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.signedinteger)
    low = -2 if signed else 0
    values = st.integers(low, 4)
    if np.issubdtype(dtype, np.floating):
        values = st.one_of(values, st.sampled_from([0.5, 2.25]))  # fractions: not counts
    dense = draw(hnp.arrays(np.float64, (n, genes), elements=values))
    if n > 1 and draw(st.booleans()):
        dense[n // 2 :] = dense[: n - n // 2]  # copies
    gene_map = draw(hnp.arrays(np.int32, genes, elements=st.integers(-1, genes - 1), unique=False))
    return sp.csr_matrix(dense.astype(dtype)), gene_map


def reference_pairs(x: sp.csr_matrix, gene_map: np.ndarray, i: int) -> list[tuple[int, Any]]:
    """Row i's (gene, stored value) pairs as the kernel hashes them: mapped, nonzero."""
    lo, hi = x.indptr[i], x.indptr[i + 1]
    return [
        (int(gene_map[c]), v)
        for c, v in zip(x.indices[lo:hi], x.data[lo:hi], strict=True)
        if gene_map[c] >= 0 and v != 0
    ]


def as_count(v: Any) -> int:
    """The count the kernel hashes a value as: a float's whole part (0 below zero), an
    integer's value modulo 2^64."""
    if isinstance(v, np.floating):
        return int(v) if v >= 0 else 0
    return int(v) % 2**64


@FUZZ
@given(chunk=count_chunks(), index_type=st.sampled_from([np.int32, np.int64]))
def test_hash_count_rows(chunk: tuple[sp.csr_matrix, np.ndarray], index_type: Any) -> None:
    x, gene_map = chunk
    hashes, nnz, bad = _core.hash_count_rows(
        x.indptr.astype(np.int64), x.indices.astype(index_type), x.data, gene_map
    )
    # equal hashes exactly for equal multisets of (gene, count); a gene mapped twice counts twice
    pairs = [reference_pairs(x, gene_map, i) for i in range(x.shape[0])]
    counts = [sorted((g, as_count(v)) for g, v in p) for p in pairs]
    assert nnz.tolist() == [len(p) for p in pairs]
    for i in range(x.shape[0]):
        for j in range(x.shape[0]):
            assert (hashes[i] == hashes[j]) == (counts[i] == counts[j])
    assert bad == sum(1 for p in pairs for _, v in p if v < 0 or v != np.floor(v))


@st.composite
def knn_results(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int]:
    n = draw(st.integers(0, 30))
    k = draw(st.integers(1, 8))
    first_row = draw(st.integers(0, 5))
    d2 = np.sort(draw(hnp.arrays(np.float32, (n, k), elements=st.integers(0, 9).map(float))), 1)
    labels = draw(hnp.arrays(np.int64, (n, k), elements=st.integers(-1, n + first_row)))
    for i in range(n):  # FAISS pads with -1 at the end of a row
        pad = draw(st.integers(0, k))
        labels[i, k - pad :] = -1
    return d2, labels, first_row, draw(st.integers(1, k + 1))


@FUZZ
@given(result=knn_results())
def test_knn_summary(result: tuple[np.ndarray, np.ndarray, int, int]) -> None:
    d2, labels, first_row, n_mean = result
    nn_row, nn_dist, mean = _core.knn_summary(d2, labels, first_row, n_mean)
    want_row, want_dist, want_mean = reference_summary(d2, labels, first_row, n_mean)
    np.testing.assert_array_equal(nn_row, want_row.astype(np.int64))
    np.testing.assert_allclose(nn_dist, want_dist.astype(np.float64), rtol=1e-6)
    np.testing.assert_allclose(mean, want_mean.astype(np.float64), rtol=1e-6)


@FUZZ
@given(x=embeddings(), data=st.data())
def test_row_sq_dists(x: np.ndarray, data: st.DataObject) -> None:
    n = len(x)
    first = data.draw(st.integers(0, n - 1))
    rows = data.draw(st.integers(0, n - first))
    k = data.draw(st.integers(0, 5))
    labels = data.draw(hnp.arrays(np.int64, (rows, k), elements=st.integers(-1, n - 1)))
    d2 = _core.row_sq_dists(x, labels, first)
    diff = x[first : first + rows, None, :].astype(np.float64) - x[np.maximum(labels, 0)]
    want = np.where(labels >= 0, (diff**2).sum(axis=2), np.inf)
    np.testing.assert_array_equal(d2, want.astype(np.float32))
    if rows:
        with pytest.raises(ValueError, match="first_row"):
            _core.row_sq_dists(x, labels, n - rows + 1)
        if k:
            labels[0, 0] = n
            with pytest.raises(ValueError, match=f"row {n} is out of range"):
                _core.row_sq_dists(x, labels, first)


@FUZZ
@given(data=st.data(), n=st.integers(0, 40))
def test_union_find(data: st.DataObject, n: int) -> None:
    n_edges = data.draw(st.integers(0, 3 * n if n else 0), "edges")
    node = st.integers(0, max(n - 1, 0))
    a = np.array(data.draw(st.lists(node, min_size=n_edges, max_size=n_edges)), dtype=np.int64)
    b = np.array(data.draw(st.lists(node, min_size=n_edges, max_size=n_edges)), dtype=np.int64)
    group = _core.union_find(n, a, b)
    assert len(group) == n
    if n == 0:
        return
    graph = sp.coo_matrix((np.ones(n_edges), (a, b)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    for c in np.unique(comp):
        members = np.flatnonzero(comp == c)
        assert (group[members] == (members.min() if len(members) > 1 else -1)).all()


@FUZZ
@given(x=embeddings(max_rows=30), data=st.data())
def test_check_finite_names_the_first_bad_row(x: np.ndarray, data: st.DataObject) -> None:
    rows = data.draw(st.lists(st.integers(0, len(x) - 1), max_size=3), "bad rows")
    for r in rows:
        x[r, data.draw(st.integers(0, x.shape[1] - 1))] = data.draw(
            st.sampled_from([np.nan, np.inf, -np.inf])
        )
    if not rows:
        _core.check_finite(x)
        return
    with pytest.raises(ValueError, match=rf"^x: row {min(rows)} contains NaN or inf$"):
        _core.check_finite(x)


# ---- wrong inputs: the documented TypeError / ValueError, never a crash -----------------

WRONG_FLOATS = (np.float64, np.float16, np.int32, np.int64, np.bool_)


def float_array_calls(x: np.ndarray) -> list[Any]:
    """Every kernel that takes a float32 embedding, called on ``x`` in its place."""
    n = max(len(x), 1)
    return [
        lambda: _core.kcenter(x, 1),
        lambda: _core.kcenter_covered(x, np.zeros(n, np.float32), 1),
        lambda: _core.grid_boxes(x, 1.0),
        lambda: _core.grid_covering(x, 1),
        lambda: _core.check_finite(x),
    ]


@FUZZ
@given(dtype=st.sampled_from(WRONG_FLOATS), n=st.integers(1, 5), d=st.integers(1, 3))
def test_wrong_dtype_is_a_type_error(dtype: Any, n: int, d: int) -> None:
    x = np.zeros((n, d), dtype=dtype)
    for call in float_array_calls(x):
        with pytest.raises(TypeError, match="x: expected C-contiguous float32"):
            call()
    with pytest.raises(TypeError, match="values: expected C-contiguous float32"):
        _core.facility_location(
            np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.int64), np.ones(n, dtype), 1
        )
    with pytest.raises(TypeError, match="d2: expected C-contiguous float32"):
        _core.knn_summary(np.zeros((n, d), dtype), np.zeros((n, d), np.int64), 0, 1)


@FUZZ
@given(n=st.integers(2, 6), d=st.integers(2, 4), ndim=st.sampled_from([1, 3]))
def test_wrong_layout_is_named(n: int, d: int, ndim: int) -> None:
    strided = np.zeros((d, n), np.float32).T
    for call in float_array_calls(strided):
        with pytest.raises(TypeError, match="not contiguous: use np.ascontiguousarray"):
            call()
    shaped = np.zeros((n,) * ndim, np.float32)
    for call in float_array_calls(shaped):
        with pytest.raises(ValueError, match=f"x: expected a 2-D array, got {ndim}-D"):
            call()


@FUZZ
@given(x=embeddings(max_rows=10), extra=st.integers(1, 3))
def test_budget_past_the_rows_is_a_value_error(x: np.ndarray, extra: int) -> None:
    n = len(x)
    with pytest.raises(ValueError, match="budget"):
        _core.kcenter(x, n + extra)
    with pytest.raises(ValueError, match="budget"):
        _core.kcenter_covered(x, np.zeros(n, np.float32), n + extra)
    with pytest.raises(ValueError, match="budget"):
        _core.kcenter(x, -extra)
    graph = sp.csr_matrix(np.eye(n, dtype=np.float32))
    with pytest.raises(ValueError, match="budget"):
        _core.facility_location(
            graph.indptr.astype(np.int64), graph.indices.astype(np.int64), graph.data, n + extra
        )


def test_empty_inputs_give_empty_outputs() -> None:
    empty = np.zeros((0, 3), np.float32)
    for out in _core.kcenter(empty, 0):
        assert len(out) == 0
    for out in _core.kcenter_covered(empty, np.zeros(0, np.float32), 0):
        assert len(out) == 0
    zero = np.zeros(1, np.int64)
    for out in _core.facility_location(zero, zero[:0], np.zeros(0, np.float32), 0):
        assert len(out) == 0
    assert len(_core.union_find(0, zero[:0], zero[:0])) == 0
    for out in _core.knn_summary(np.zeros((0, 2), np.float32), np.zeros((0, 2), np.int64), 0, 1):
        assert len(out) == 0
    no_genes = np.zeros(0, np.int32)
    hashes, nnz, bad = _core.hash_count_rows(zero, zero[:0], np.zeros(0, np.float32), no_genes)
    assert len(hashes) == len(nnz) == bad == 0
    with pytest.raises(ValueError, match="x: expected at least one row"):
        _core.grid_boxes(empty, 1.0)

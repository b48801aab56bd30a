"""The native duplicate and neighbour kernels against plain numpy/scipy references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scurate import _core


def counts_matrix(rng: np.random.Generator, n: int, genes: int) -> sp.csr_matrix:
    dense = rng.poisson(0.3, size=(n, genes)).astype(np.int32)
    return sp.csr_matrix(dense)


def row_pairs(x: sp.csr_matrix, gene_map: np.ndarray, i: int) -> tuple[tuple[int, int], ...]:
    lo, hi = x.indptr[i], x.indptr[i + 1]
    pairs = [
        (int(gene_map[c]), int(v))
        for c, v in zip(x.indices[lo:hi], x.data[lo:hi], strict=True)
        if gene_map[c] >= 0 and v != 0
    ]
    return tuple(sorted(pairs))


def hashed(x: sp.csr_matrix, gene_map: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    return _core.hash_count_rows(
        x.indptr.astype(np.int64), x.indices, x.data, gene_map.astype(np.int32)
    )


def test_hash_equal_exactly_when_pairs_equal() -> None:
    rng = np.random.default_rng(0)
    x = counts_matrix(rng, 300, 40)
    rows = np.vstack([x.toarray(), x.toarray()[:50]])  # 50 planted copies
    x = sp.csr_matrix(rows)
    gene_map = np.arange(40, dtype=np.int32)
    gene_map[[3, 17]] = -1  # two columns left out
    hashes, nnz, bad = hashed(x, gene_map)
    assert bad == 0
    pairs = [row_pairs(x, gene_map, i) for i in range(x.shape[0])]
    assert nnz.tolist() == [len(p) for p in pairs]
    for i in range(0, x.shape[0], 7):
        for j in range(x.shape[0]):
            assert (hashes[i] == hashes[j]) == (pairs[i] == pairs[j])


def test_hash_ignores_column_order_dtype_and_layout() -> None:
    rng = np.random.default_rng(1)
    x = counts_matrix(rng, 200, 30)
    base, _, _ = hashed(x, np.arange(30))
    perm = rng.permutation(30)
    shuffled = sp.csr_matrix(x.toarray()[:, perm])  # column j holds gene perm[j]
    for data_dtype in (np.float32, np.float64, np.int64, np.uint16):
        for index_dtype in (np.int32, np.int64):
            y = shuffled.astype(data_dtype)
            got, _, bad = _core.hash_count_rows(
                y.indptr.astype(np.int64),
                y.indices.astype(index_dtype),
                y.data,
                perm.astype(np.int32),
            )
            assert bad == 0
            np.testing.assert_array_equal(got, base)
    # explicit zeros stored in the matrix change nothing
    z = x.copy()
    z.data[::5] = 0
    z_hash, _, _ = hashed(z, np.arange(30))
    z.eliminate_zeros()
    np.testing.assert_array_equal(z_hash, hashed(z, np.arange(30))[0])


def test_hash_takes_an_equal_dtype_that_is_not_numpys_own_descriptor() -> None:
    # zarr hands chunks typed '<f4'/'<i4' by equal copies of numpy's descriptors
    x = counts_matrix(np.random.default_rng(2), 50, 20).astype(np.float32)
    data = x.data.view(np.dtype(np.float32).newbyteorder("<"))
    indices = x.indices.view(np.dtype(np.int32).newbyteorder("<"))
    assert data.dtype is not np.dtype(np.float32) and indices.dtype is not np.dtype(np.int32)
    got = _core.hash_count_rows(
        x.indptr.astype(np.int64), indices, data, np.arange(20, dtype=np.int32)
    )
    np.testing.assert_array_equal(got[0], hashed(x, np.arange(20))[0])


def test_hash_counts_values_that_are_not_counts() -> None:
    x = sp.csr_matrix(np.array([[1.0, 2.5, 0.0], [-1.0, 3.0, 1.0], [1.0, 0.0, 2.0]]))
    _, nnz, bad = hashed(x, np.arange(3))
    assert bad == 2
    assert nnz.tolist() == [2, 3, 2]


def test_hash_rejects_bad_input() -> None:
    x = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="indices: column 2"):
        _core.hash_count_rows(
            x.indptr.astype(np.int64), x.indices, x.data, np.zeros(2, dtype=np.int32)
        )
    with pytest.raises(TypeError, match="indptr: expected C-contiguous int64"):
        _core.hash_count_rows(
            x.indptr.astype(np.int32), x.indices, x.data, np.arange(3, dtype=np.int32)
        )
    with pytest.raises(TypeError, match="data: expected a float, int or uint array"):
        _core.hash_count_rows(
            x.indptr.astype(np.int64), x.indices, x.data.astype(bool), np.zeros(3, np.int32)
        )
    with pytest.raises(ValueError, match="indptr: spans"):
        _core.hash_count_rows(
            np.array([0, 5], dtype=np.int64), x.indices, x.data, np.zeros(3, np.int32)
        )


def reference_summary(
    d2: np.ndarray, labels: np.ndarray, first_row: int, n_mean: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nn_row, nn_dist, mean = [], [], []
    for i in range(len(d2)):
        keep = [
            (np.sqrt(max(d, 0.0)), j)
            for d, j in zip(d2[i], labels[i], strict=True)
            if j >= 0 and j != first_row + i
        ]
        nn_row.append(keep[0][1] if keep else -1)
        nn_dist.append(keep[0][0] if keep else np.nan)
        take = [d for d, _ in keep[:n_mean]]
        mean.append(np.mean(take) if take else np.nan)
    return np.array(nn_row), np.array(nn_dist), np.array(mean)


def test_knn_summary_matches_reference() -> None:
    import faiss

    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 8)).astype(np.float32)
    x[400:450] = x[:50]  # copies: their twin can come before themselves
    index = faiss.IndexFlatL2(8)
    index.add(x)
    d2, labels = index.search(x[100:500], 6)
    labels[0, 3:] = -1  # FAISS pads with -1
    got = _core.knn_summary(d2, labels, 100, 4)
    want = reference_summary(d2, labels, 100, 4)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-6)
    with pytest.raises(ValueError, match="n_mean"):
        _core.knn_summary(d2, labels, 100, 0)


def test_union_find_matches_connected_components() -> None:
    rng = np.random.default_rng(3)
    n = 400
    a = rng.integers(0, n, size=250)
    b = rng.integers(0, n, size=250)
    group = _core.union_find(n, a, b)
    graph = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    for c in np.unique(comp):
        members = np.flatnonzero(comp == c)
        want = members.min() if len(members) > 1 else -1
        assert (group[members] == want).all()
    # edge order does not matter
    perm = rng.permutation(len(a))
    np.testing.assert_array_equal(_core.union_find(n, b[perm], a[perm]), group)
    with pytest.raises(ValueError, match="outside 0..399"):
        _core.union_find(n, np.array([0]), np.array([n]))


def reference_covered(
    x: np.ndarray, covered: np.ndarray, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    x64 = x.astype(np.float64)
    d2 = covered.astype(np.float64) ** 2
    order, radii = [], []
    for _ in range(budget):
        p = int(np.argmax(d2))
        d2 = np.minimum(d2, ((x64 - x64[p]) ** 2).sum(1))
        d2[p] = -1.0
        order.append(p)
        radii.append(np.sqrt(max(d2.max(), 0.0)))
    return np.array(order), np.array(radii)


@pytest.mark.parametrize("seed", range(6))
def test_kcenter_covered_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(700, 12)).astype(np.float32)
    reference = rng.normal(size=(300, 12)).astype(np.float32)
    covered = np.sqrt(((x[:, None, :] - reference[None]) ** 2).sum(-1).min(1)).astype(np.float32)
    order, radii = _core.kcenter_covered(x, covered, 60)
    want_order, want_radii = reference_covered(x, covered, 60)
    np.testing.assert_array_equal(order, want_order)
    np.testing.assert_allclose(radii, want_radii, rtol=1e-6)


def test_kcenter_covered_without_reference_is_farthest_first() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    order, radii = _core.kcenter_covered(x, np.full(400, np.inf, np.float32), 400)
    plain_order, plain_radii = _core.kcenter(x, 400, first=0)
    np.testing.assert_array_equal(order, plain_order)
    np.testing.assert_allclose(radii, plain_radii, rtol=1e-6)
    assert radii[-1] == 0.0
    bad = np.zeros(400, np.float32)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="covered: row 3"):
        _core.kcenter_covered(x, bad, 4)
    with pytest.raises(ValueError, match="covered: has 3 entries"):
        _core.kcenter_covered(x, np.zeros(3, np.float32), 4)

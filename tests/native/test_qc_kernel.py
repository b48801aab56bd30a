"""_core.qc_rows against numpy: totals, detected genes and mitochondrial counts per CSR row."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scurate import _core


def random_counts(rng: np.random.Generator, n: int, m: int, dtype: type) -> sp.csr_matrix:
    x = sp.random(n, m, density=0.08, format="csr", random_state=rng, dtype=np.float64)
    x.data = np.floor(x.data * 40)  # some stored zeros: they are not detected genes
    return sp.csr_matrix(x, dtype=dtype)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint16, np.int64])
@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_matches_numpy(seed: int, dtype: type, index: type) -> None:
    rng = np.random.default_rng(seed)
    x = random_counts(rng, 2500, 300, dtype)  # above the kernel's parallel threshold
    mito = rng.random(300) < 0.05
    total, genes, in_mito = _core.qc_rows(
        x.indptr.astype(np.int64), x.indices.astype(index), x.data, mito
    )
    dense = x.toarray().astype(np.float64)
    np.testing.assert_array_equal(total, dense.sum(axis=1))
    np.testing.assert_array_equal(genes, (dense > 0).sum(axis=1))
    np.testing.assert_array_equal(in_mito, dense[:, mito].sum(axis=1))
    assert genes.dtype == np.int32 and total.dtype == np.float64


def test_rows_relative_to_a_slice_and_empty_rows() -> None:
    x = sp.csr_matrix(np.array([[0, 2, 0], [0, 0, 0], [5, 0, 1]], dtype=np.float32))
    total, genes, in_mito = _core.qc_rows(
        x.indptr.astype(np.int64), x.indices, x.data, np.array([False, False, True])
    )
    assert total.tolist() == [2, 0, 6] and genes.tolist() == [1, 0, 2]
    assert in_mito.tolist() == [0, 0, 1]


def test_bad_inputs_name_the_argument() -> None:
    x = sp.csr_matrix(np.eye(3, dtype=np.float32))
    ptr = x.indptr.astype(np.int64)
    with pytest.raises(TypeError, match="mito: expected C-contiguous bool"):
        _core.qc_rows(ptr, x.indices, x.data, np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"indices: column 2 \(row 2\) is outside 0..1"):
        _core.qc_rows(ptr, x.indices, x.data, np.zeros(2, dtype=bool))
    with pytest.raises(ValueError, match="indptr: spans"):
        _core.qc_rows(np.array([0, 9], dtype=np.int64), x.indices, x.data, np.zeros(3, bool))
    with pytest.raises(TypeError, match="data: expected a float, int or uint array"):
        _core.qc_rows(ptr, x.indices, x.data.astype(np.complex64), np.zeros(3, bool))

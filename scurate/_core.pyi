"""scurate's native kernels (private: use their wrappers in scurate and scurate.plugin)."""

import numpy as np
from numpy.typing import NDArray

__version__: str
has_cuda: bool

def max_threads() -> int: ...
def kcenter(
    x: NDArray[np.float32],
    budget: int,
    *,
    initial: NDArray[np.int64] | None = None,
    first: int = 0,
    weights: NDArray[np.float32] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]: ...
def check_finite(x: NDArray[np.float32], arg: str = "x") -> None: ...
def hash_count_rows(
    indptr: NDArray[np.int64],
    indices: NDArray[np.integer],
    data: NDArray[np.generic],
    gene_map: NDArray[np.int32],
) -> tuple[NDArray[np.uint64], NDArray[np.uint32], int]: ...
def knn_summary(
    d2: NDArray[np.float32], labels: NDArray[np.int64], first_row: int, n_mean: int
) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.float32]]: ...
def row_sq_dists(
    x: NDArray[np.float32], labels: NDArray[np.int64], first_row: int
) -> NDArray[np.float32]: ...
def union_find(n_nodes: int, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.int64]: ...
def kcenter_covered(
    x: NDArray[np.float32], covered: NDArray[np.float32], budget: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]: ...
def facility_location(
    indptr: NDArray[np.int64],
    indices: NDArray[np.int32] | NDArray[np.int64],
    values: NDArray[np.float32],
    budget: int,
    *,
    sample: int = 0,
    seed: int = 0,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]: ...
def covering_graph(
    near: NDArray[np.int32], sim: NDArray[np.float32]
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float32]]: ...
def covering_count_block(
    near: NDArray[np.int32], first: int, counts: NDArray[np.int64]
) -> None: ...
def covering_fill_block(
    near: NDArray[np.int32],
    sim: NDArray[np.float32],
    first: int,
    indptr: NDArray[np.int64],
    next: NDArray[np.int64],
    indices: NDArray[np.int32],
    values: NDArray[np.float32],
) -> None: ...
def grid_boxes(x: NDArray[np.float32], unit: float) -> tuple[NDArray[np.int64], int]: ...
def grid_covering(
    x: NDArray[np.float32], target: int, *, alpha: float = 0.1, max_iter: int = 100
) -> tuple[NDArray[np.int64], int, float]: ...
def qc_rows(
    indptr: NDArray[np.int64],
    indices: NDArray[np.integer],
    data: NDArray[np.generic],
    mito: NDArray[np.bool_],
) -> tuple[NDArray[np.float64], NDArray[np.int32], NDArray[np.float64]]: ...

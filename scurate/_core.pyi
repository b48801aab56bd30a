"""scurate's native kernels (private: use scurate.farthest_first and friends)."""

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
) -> tuple[NDArray[np.int64], NDArray[np.float64]]: ...
def check_finite(x: NDArray[np.float32], arg: str = "x") -> None: ...

"""A small autoencoder learned from the selected cells only: the second representation proxy of
``scurate bench`` (``--representations pca,autoencoder``), where torch is installed.

Architecture and training are fixed so that selections, not settings, are compared: genes →
128 → ReLU → 32 (the representation) → 128 → ReLU → genes, mean squared error on the
log-normalized expression, Adam (learning rate 1e-3), ``STEPS`` minibatches of ``BATCH`` cells
drawn with replacement (the same number of steps whatever the budget), torch seeded, on one
torch thread (the matrices are small: more threads only wait, and spin on a busy machine).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate.errors import OptionError

HIDDEN = 128
LATENT = 32
STEPS = 300
BATCH = 128
LEARNING_RATE = 1e-3


def require_torch() -> Any:
    """The torch module, or one line saying how to install it."""
    try:
        import torch
    except ImportError as exc:
        msg = (
            "representations='autoencoder': needs torch, which is not installed "
            "(pip install torch, or pip install 'scurate[torch]')"
        )
        raise OptionError(msg) from exc
    return torch


def fit_encode(train: sp.csr_matrix, encode: sp.csr_matrix, *, seed: int) -> NDArray[np.float32]:
    """Train on the rows of ``train`` and return the representation of the rows of ``encode``."""
    torch = require_torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_encode(torch, train, encode, seed=seed)
    finally:
        torch.set_num_threads(threads)


def _fit_encode(
    torch: Any, train: sp.csr_matrix, encode: sp.csr_matrix, *, seed: int
) -> NDArray[np.float32]:
    nn = torch.nn
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n_genes = train.shape[1]
    encoder = nn.Sequential(nn.Linear(n_genes, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, LATENT))
    decoder = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, n_genes))
    model = nn.Sequential(encoder, decoder)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    x = torch.from_numpy(np.asarray(train.toarray(), dtype=np.float32))
    for _ in range(STEPS):
        batch = x[torch.randint(0, x.shape[0], (min(BATCH, x.shape[0]),), generator=generator)]
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(batch), batch)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        out = encoder(torch.from_numpy(np.asarray(encode.toarray(), dtype=np.float32)))
    return np.ascontiguousarray(out.numpy(), dtype=np.float32)

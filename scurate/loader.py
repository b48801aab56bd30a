"""Feeding a trainer (public module): :class:`CellLoader` reads a selection's cells in shuffled
minibatches straight from the sources; ``TorchDataset`` is the same as a torch
``IterableDataset`` (imported on first use, so scurate imports without torch);
:func:`export_soma_ids` hands the selected cells of TileDB-SOMA experiments to loaders that read
the experiments themselves (TileDB-SOMA-ML)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scurate._feed.loader import Batch, CellLoader
from scurate._feed.soma_ids import SomaIds, export_soma_ids

if TYPE_CHECKING:
    from scurate._feed.torch_dataset import TorchBatch as TorchBatch
    from scurate._feed.torch_dataset import TorchDataset as TorchDataset

__all__ = ["Batch", "CellLoader", "SomaIds", "TorchBatch", "TorchDataset", "export_soma_ids"]


def __getattr__(name: str) -> Any:
    if name in ("TorchDataset", "TorchBatch"):
        try:
            import torch  # noqa: F401
        except ImportError:
            msg = "scurate.loader.TorchDataset needs torch: pip install 'scurate[torch]'"
            raise ImportError(msg) from None
        from scurate._feed import torch_dataset

        return getattr(torch_dataset, name)
    msg = f"module 'scurate.loader' has no attribute {name!r}"
    raise AttributeError(msg)

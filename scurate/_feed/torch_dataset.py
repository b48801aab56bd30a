"""``scurate.loader.TorchDataset``: a CellLoader as a torch ``IterableDataset``.

Imported only through ``scurate.loader.TorchDataset``, which says which extra to install when
torch is missing; nothing else in scurate imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import IterableDataset, get_worker_info

from scurate._feed.loader import Batch, CellLoader
from scurate.errors import OptionError

LAYOUTS = ("dense", "csr", "coo")


class TorchDataset(IterableDataset[dict[str, Any]]):  # type: ignore[misc,unused-ignore]
    """The selected cells of a ``select`` output as a torch ``IterableDataset`` of minibatches.

    Takes the :class:`~scurate.loader.CellLoader` arguments (``batch_size``, ``shuffle``,
    ``seed``, ``sampling``, ``replacement``, ``epoch_size``, ``genes``, ``labels``, ``rank``,
    ``world_size``, ``budget``, ...) and yields one dict per minibatch, so use it with
    ``DataLoader(dataset, batch_size=None, ...)``:

    - ``X``: float32, cells x genes (``dataset.genes`` order); a dense tensor, or a sparse CSR
      or COO tensor with ``layout="csr"`` / ``"coo"``;
    - ``labels``: per label column, int64 codes into ``dataset.classes[column]`` (-1 where the
      label is unknown, for ``CrossEntropyLoss(ignore_index=-1)``);
    - ``weight`` (float32), ``selection_rank`` and ``row`` (int64) tensors; ``cell_id`` and
      ``dataset_id`` numpy arrays of strings (a DataLoader passes them as they are, where it
      would walk a list string by string).

    The batches of ``rank`` are dealt to the DataLoader's workers in turn (worker ``w`` of
    ``n`` reads batches ``w``, ``w + n``, ...), and the DataLoader takes them back in turn, so
    an epoch yields the same batches in the same order with 0, 1, 2 or 4 workers: the CellLoader's
    batches for this rank. Call ``set_epoch(e)`` before each epoch, as with
    ``DistributedSampler`` (it reaches workers that are started per epoch, the default;
    persistent workers keep the epoch they started with).
    """

    def __init__(
        self, selection: str | os.PathLike[str], *, layout: str = "dense", **options: Any
    ) -> None:
        if layout not in LAYOUTS:
            msg = f"layout={layout!r}: give one of {', '.join(LAYOUTS)}"
            raise OptionError(msg)
        self.loader = CellLoader(selection, **options)
        self.layout = layout

    @property
    def genes(self) -> NDArray[np.object_]:
        """The columns of ``X``."""
        return self.loader.genes

    @property
    def classes(self) -> dict[str, list[str]]:
        """Per label column, the label of each code (sorted; the same on every rank)."""
        return self.loader.classes

    @property
    def n_cells(self) -> int:
        """Cells this rank yields per epoch, over all its workers."""
        return self.loader.n_cells

    def __len__(self) -> int:
        """Batches this rank yields per epoch, over all its workers."""
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        """Use the draw and shuffle order of ``epoch`` for the next iteration."""
        self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = get_worker_info()
        loader = self.loader if worker is None else self.loader.split(worker.id, worker.num_workers)
        codes = {c: {v: i for i, v in enumerate(names)} for c, names in self.classes.items()}
        for batch in loader:
            yield self._tensors(batch, codes)

    def _tensors(self, batch: Batch, codes: dict[str, dict[str, int]]) -> dict[str, Any]:
        return {
            "X": _matrix(batch, self.layout),
            "labels": {
                c: torch.tensor([_code(codes[c], v) for v in values], dtype=torch.int64)
                for c, values in batch.labels.items()
            },
            "weight": torch.from_numpy(batch.weight),
            "selection_rank": torch.from_numpy(batch.selection_rank),
            "row": torch.from_numpy(batch.row),
            "cell_id": _strings(batch.cell_id),
            "dataset_id": _strings(batch.dataset_id),
        }


def _code(codes: dict[str, int], value: object) -> int:
    return -1 if value is None else codes.get(str(value), -1)


def _strings(values: NDArray[np.object_]) -> NDArray[np.object_]:
    return values if all(isinstance(v, str) for v in values) else values.astype(str).astype(object)


def _matrix(batch: Batch, layout: str) -> torch.Tensor:
    x = batch.X
    shape = (int(x.shape[0]), int(x.shape[1]))
    if layout == "dense":
        return torch.from_numpy(x.toarray())
    values = torch.from_numpy(np.asarray(x.data, dtype=np.float32))
    columns = torch.from_numpy(np.asarray(x.indices, dtype=np.int64))
    if layout == "csr":
        crow = torch.from_numpy(np.asarray(x.indptr, dtype=np.int64))
        # valid by construction (scipy CSR, indices sorted): checking would cost a pass
        return torch.sparse_csr_tensor(crow, columns, values, size=shape, check_invariants=False)
    rows = torch.from_numpy(np.repeat(np.arange(shape[0], dtype=np.int64), np.diff(x.indptr)))
    return torch.sparse_coo_tensor(
        torch.stack([rows, columns]), values, size=shape, is_coalesced=True, check_invariants=False
    )

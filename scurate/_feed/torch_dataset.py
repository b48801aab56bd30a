"""``scurate.loader.TorchDataset``: a CellLoader as a torch ``IterableDataset``.

Imported only through ``scurate.loader.TorchDataset``, which says which extra to install when
torch is missing; nothing else in scurate imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray
from torch.utils.data import IterableDataset, get_worker_info

from scurate._feed.loader import Batch, CellLoader
from scurate.errors import OptionError

LAYOUTS = ("dense", "csr", "coo")
FIELDS = ("X", "labels", "weight", "selection_rank", "row", "cell_id", "dataset_id")


class TorchDataset(IterableDataset["TorchBatch"]):  # type: ignore[misc,unused-ignore]
    """The selected cells of a ``select`` output as a torch ``IterableDataset`` of minibatches.

    Takes the :class:`~scurate.loader.CellLoader` arguments (``batch_size``, ``shuffle``,
    ``seed``, ``sampling``, ``replacement``, ``epoch_size``, ``genes``, ``labels``, ``rank``,
    ``world_size``, ``budget``, ...) and yields one :class:`TorchBatch` per minibatch (read
    like a dict), so use it with
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

    def __iter__(self) -> Iterator[TorchBatch]:
        worker = get_worker_info()
        loader = self.loader if worker is None else self.loader.split(worker.id, worker.num_workers)
        codes = {c: {v: i for i, v in enumerate(names)} for c, names in self.classes.items()}
        for batch in loader:
            yield TorchBatch(batch, codes, self.layout)


class TorchBatch:
    """One minibatch of a :class:`TorchDataset`, read like a dict: ``batch["X"]``,
    ``batch["labels"]["cell_type"]``, ``batch["weight"]``, ... (``keys()``, ``items()``,
    ``dict(batch.items())``).

    It holds numpy arrays and makes the tensors where a field is first read: in the training
    process, not in a DataLoader worker. A worker's tensors would each cross to the training
    process through a shared-memory segment of their own, several milliseconds a batch; numpy
    arrays are pickled through the worker's pipe instead, a tenth of that. ``pin_memory()``
    (what ``DataLoader(pin_memory=True)`` calls) returns the fields as pinned tensors.
    """

    __slots__ = ("_fields", "_layout", "_tensors")

    def __init__(self, batch: Batch, codes: dict[str, dict[str, int]], layout: str) -> None:
        x = batch.X
        self._layout = layout
        self._tensors: dict[str, Any] = {}
        self._fields: dict[str, Any] = {
            "X": (x.data, x.indices, x.indptr, x.shape),
            "labels": {
                c: np.array([_code(codes[c], v) for v in values], dtype=np.int64)
                for c, values in batch.labels.items()
            },
            "weight": batch.weight,
            "selection_rank": batch.selection_rank,
            "row": batch.row,
            "cell_id": _strings(batch.cell_id),
            "dataset_id": _strings(batch.dataset_id),
        }

    def __getitem__(self, key: str) -> Any:
        if key not in self._tensors:
            if key not in self._fields:
                raise KeyError(key)
            value = self._fields[key]
            if key == "X":
                data, indices, indptr, shape = value
                value = _matrix(data, indices, indptr, shape, self._layout)
            elif key == "labels":
                value = {c: torch.from_numpy(v) for c, v in value.items()}
            elif key not in ("cell_id", "dataset_id"):
                value = torch.from_numpy(value)
            self._tensors[key] = value
        return self._tensors[key]

    def keys(self) -> tuple[str, ...]:
        return FIELDS

    def values(self) -> list[Any]:
        return [self[k] for k in FIELDS]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in FIELDS]

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __len__(self) -> int:
        return len(FIELDS)

    def __contains__(self, key: object) -> bool:
        return key in FIELDS

    def __getstate__(self) -> tuple[dict[str, Any], str]:
        return self._fields, self._layout  # numpy only: pickled through the worker's pipe

    def __setstate__(self, state: tuple[dict[str, Any], str]) -> None:
        self._fields, self._layout = state
        self._tensors = {}

    def pin_memory(self) -> dict[str, Any]:
        """The fields as a dict, tensors in pinned memory (for ``DataLoader(pin_memory=True)``)."""
        pinned: dict[str, Any] = {}
        for key, value in self.items():
            if isinstance(value, torch.Tensor):
                pinned[key] = value.pin_memory()
            elif isinstance(value, dict):
                pinned[key] = {c: t.pin_memory() for c, t in value.items()}
            else:
                pinned[key] = value
        return pinned

    def __repr__(self) -> str:
        n = len(self._fields["row"])
        return f"TorchBatch({n} cells, fields {', '.join(FIELDS)})"


def _code(codes: dict[str, int], value: object) -> int:
    return -1 if value is None else codes.get(str(value), -1)


def _strings(values: NDArray[np.object_]) -> NDArray[np.object_]:
    return values if all(isinstance(v, str) for v in values) else values.astype(str).astype(object)


def _matrix(
    data: NDArray[Any], indices: NDArray[Any], indptr: NDArray[Any], shape: Any, layout: str
) -> torch.Tensor:
    shape = (int(shape[0]), int(shape[1]))
    if layout == "dense":
        dense = sp.csr_matrix((data, indices, indptr), shape=shape).toarray()
        return torch.from_numpy(np.asarray(dense, dtype=np.float32))
    values = torch.from_numpy(np.asarray(data, dtype=np.float32))
    columns = torch.from_numpy(np.asarray(indices, dtype=np.int64))
    if layout == "csr":
        crow = torch.from_numpy(np.asarray(indptr, dtype=np.int64))
        # valid by construction (scipy CSR, indices sorted): checking would cost a pass
        return torch.sparse_csr_tensor(crow, columns, values, size=shape, check_invariants=False)
    rows = torch.from_numpy(np.repeat(np.arange(shape[0], dtype=np.int64), np.diff(indptr)))
    return torch.sparse_coo_tensor(
        torch.stack([rows, columns]), values, size=shape, is_coalesced=True, check_invariants=False
    )

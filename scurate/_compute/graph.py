"""The pool's neighbour lists, kept from the scoring search for the policies.

Scoring searches every pool cell's nearest other cells once (:mod:`scurate._compute.scoring`).
A policy that needs a kNN graph (facility location) reads it from here instead of searching
again: at a million cells that second search cost as much as the first. The policy sees only
the cells it may choose from (duplicates, QC failures and other strata set aside), so the lists
are restricted to those cells and renumbered; a cell whose listed neighbours were set aside
keeps fewer of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scurate._data import spill

CHUNK = 65_536  # cells renumbered at a time


@dataclass(frozen=True)
class PoolGraph:
    """Each pool cell's nearest other cells: ``rows`` (int32, nearest first, -1 past the end)
    and ``dist`` (float32 Euclidean, inf past the end), both (n_pool, width). ``cells``: the
    pool rows this view covers, in its own order (None: every pool row)."""

    rows: NDArray[np.int32]
    dist: NDArray[np.float32]
    cells: NDArray[np.int64] | None = None

    @property
    def width(self) -> int:
        return int(self.rows.shape[1])

    @property
    def n_cells(self) -> int:
        return int(self.rows.shape[0]) if self.cells is None else len(self.cells)

    def restricted(self, cells: NDArray[np.int64]) -> PoolGraph:
        """The view of ``cells`` (positions in this view), in that order. Nothing is copied
        until :meth:`lists`."""
        cells = np.asarray(cells, dtype=np.int64)
        pool_rows = cells if self.cells is None else self.cells[cells]
        return PoolGraph(self.rows, self.dist, pool_rows)

    def lists(
        self, k: int, dtype: type[np.signedinteger[Any]] = np.int64
    ) -> tuple[NDArray[np.float32], NDArray[np.signedinteger[Any]]]:
        """``(distances, positions)`` (n_cells, k) of each cell's nearest other cells within
        this view, nearest first; where fewer than ``k`` of a cell's listed neighbours are in
        the view, -1 and inf fill the rest. ``k`` at most :attr:`width`; positions of
        ``dtype`` (int64 or int32)."""
        if not 0 <= k <= self.width:
            msg = f"k: the pool's lists hold {self.width} neighbours, {k} asked"
            raise ValueError(msg)
        # the lists are built by blocks, on disk where they are large (scurate._data.spill)
        n = self.rows.shape[0] if self.cells is None else len(self.cells)
        dist = spill.Builder((n, k), np.float32)
        near = spill.Builder((n, k), dtype)
        if self.cells is None:
            for start, rows in spill.blocks(self.rows, CHUNK):  # lists mapped from disk: a
                near.put(start, rows[:, :k])  # block's pages at a time
                dist.put(start, self.dist[start : start + len(rows), :k])
            return dist.done(), near.done()
        position = np.full(self.rows.shape[0], -1, dtype=np.int64)
        position[self.cells] = np.arange(len(self.cells))
        for start in range(0, len(self.cells), CHUNK):  # bounded temporaries at any size
            cells = self.cells[start : start + CHUNK]
            listed = self.rows[cells]
            seen = np.where(listed >= 0, position[np.maximum(listed, 0)], -1)
            kept, found = seen[:, :k], self.dist[cells][:, :k]
            # lists with a neighbour set aside among their first k: the kept ones first, in
            # order (most lists have none, and are taken as they are)
            gaps = np.flatnonzero((kept < 0).any(axis=1))
            if len(gaps):
                order = np.argsort(seen[gaps] < 0, axis=1, kind="stable")[:, :k]
                kept[gaps] = np.take_along_axis(seen[gaps], order, axis=1)
                found[gaps] = np.take_along_axis(self.dist[cells[gaps]], order, axis=1)
            near.put(start, kept)
            dist.put(start, np.where(kept >= 0, found, np.inf))
            spill.release()
        return dist.done(), near.done()


def nearest_others(
    d2: NDArray[np.float32], labels: NDArray[np.int64], start: int, width: int
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Of a search of rows ``start...`` against their own pool (squared distances ``d2``,
    rows ``labels``, -1 for none), each query's ``width`` nearest other rows (int32, -1 past
    the end) and their distances (inf past the end), nearest first by ``d2`` (ties: in the
    search's order)."""
    own = np.arange(start, start + len(labels))[:, None]
    others = np.where((labels >= 0) & (labels != own), d2, np.inf)
    order = np.argsort(others, axis=1, kind="stable")[:, :width]
    found = np.take_along_axis(others, order, axis=1)
    rows = np.where(np.isfinite(found), np.take_along_axis(labels, order, axis=1), -1)
    return rows.astype(np.int32), np.sqrt(found).astype(np.float32)

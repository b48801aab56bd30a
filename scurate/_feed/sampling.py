"""What an epoch of :class:`~scurate.loader.CellLoader` draws: every cell once, cells in
proportion to their manifest ``weight``, or equal shares of a manifest column's values, with or
without replacement. A draw depends only on the seed and the epoch, so every rank computes the
same one and takes its every ``world_size``-th cell."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate.errors import InputError, OptionError

SAMPLINGS = ("uniform", "weight", "balanced:COLUMN")


@dataclass(frozen=True)
class Sampling:
    """How an epoch draws its cells (see :class:`CellLoader`)."""

    kind: str  # "uniform", "weight" or "balanced"
    column: str | None  # the manifest column of "balanced"
    replacement: bool

    @property
    def every_cell_once(self) -> bool:
        return self.kind == "uniform" and not self.replacement


def parse_sampling(sampling: object, replacement: object) -> Sampling:
    """``sampling`` and ``replacement`` as given to :class:`CellLoader`, checked."""
    kind, _, column = sampling.partition(":") if isinstance(sampling, str) else ("?", "", "")
    if kind not in ("uniform", "weight", "balanced") or (kind == "balanced") != bool(column):
        msg = (
            f"sampling={sampling!r}: give uniform, weight or balanced:COLUMN "
            "(COLUMN a manifest column, e.g. balanced:cell_type)"
        )
        raise OptionError(msg)
    if replacement is not None and not isinstance(replacement, bool):
        msg = f"replacement={replacement!r}: give True, False or None (the sampling's default)"
        raise OptionError(msg)
    with_replacement = kind != "uniform" if replacement is None else bool(replacement)
    return Sampling(kind, column.strip() or None, with_replacement)


@dataclass(frozen=True)
class Draw:
    """Which cells of the selection an epoch draws (``size`` of them over all ranks)."""

    sampling: Sampling
    size: int
    n: int  # cells in the selection
    weight: NDArray[np.float64] | None = None  # "weight": the manifest's weights
    strata: tuple[NDArray[np.int64], ...] = ()  # "balanced": each value's positions

    @classmethod
    def of(cls, sampling: Sampling, frame: pl.DataFrame, size: int, manifest: Path) -> Draw:
        """The draw of ``sampling`` over ``frame`` (the selected cells in priority order),
        checked against it."""
        n, name = frame.height, f"sampling={_spelled(sampling)!r}"
        if sampling.kind == "uniform":
            if not sampling.replacement and size > n:
                msg = f"{name} without replacement: epoch_size={size} is larger than the selection"
                raise OptionError(msg + f" ({n} cells); use replacement=True")
            return cls(sampling, size, n)
        if sampling.kind == "weight":
            weight = _weights(frame, manifest, name)
            positive = int(np.count_nonzero(weight))
            if not sampling.replacement and size > positive:
                msg = (
                    f"{name} without replacement: epoch_size={size} is more than the {positive} "
                    "cells of positive weight; use replacement=True or a smaller epoch_size"
                )
                raise OptionError(msg)
            return cls(sampling, size, n, weight=weight)
        column = str(sampling.column)
        if column not in frame.columns:
            msg = f"{name}: {manifest} has no column '{column}'"
            raise OptionError(msg)
        values = frame[column].cast(pl.String, strict=False)
        if values.null_count() == frame.height:
            msg = f"{name}: column '{column}' is null for every selected cell of {manifest}"
            raise OptionError(msg)
        keys = values.to_numpy().astype(object)
        known = np.flatnonzero(values.is_not_null().to_numpy())
        names, codes = np.unique(keys[known].astype(str), return_inverse=True)
        strata = tuple(known[codes == k].astype(np.int64) for k in range(len(names)))
        if not sampling.replacement:
            share = -(-size // len(strata))
            small = min(range(len(strata)), key=lambda k: len(strata[k]))
            if len(strata[small]) < share:
                msg = (
                    f"{name} without replacement: '{names[small]}' has {len(strata[small])} "
                    f"cells, fewer than its share of the epoch ({share} of epoch_size={size}); "
                    "use replacement=True or a smaller epoch_size"
                )
                raise OptionError(msg)
        return cls(sampling, size, n, strata=strata)

    def cells(self, seed: int, epoch: int, rank: int, world_size: int) -> NDArray[np.int64]:
        """The positions ``rank`` draws in ``epoch``: every ``world_size``-th of the epoch's
        draw (uniform, every cell once: of the priority order), in draw order."""
        s = self.sampling
        if s.every_cell_once and self.size == self.n:
            return np.arange(rank, self.n, world_size, dtype=np.int64)
        rng = np.random.default_rng([seed, epoch, 1])  # not the shuffle's stream ([seed, epoch])
        if s.kind == "uniform":
            drawn = (
                rng.integers(self.n, size=self.size)
                if s.replacement
                else rng.permutation(self.n)[: self.size]
            )
        elif s.kind == "weight":
            assert self.weight is not None
            if s.replacement:
                cdf = np.cumsum(self.weight)
                drawn = np.searchsorted(cdf, rng.random(self.size) * cdf[-1], side="right")
                drawn = np.minimum(drawn, self.n - 1)
            else:  # Efraimidis-Spirakis: the smallest Exp(1)/w keys, in their order
                with np.errstate(divide="ignore"):
                    keys = rng.exponential(size=self.n) / self.weight
                drawn = np.argsort(keys, kind="stable")[: self.size]
        else:
            k = len(self.strata)
            share = np.full(k, self.size // k)
            share[rng.choice(k, self.size % k, replace=False)] += 1
            parts = [
                members[rng.integers(len(members), size=q)]
                if s.replacement
                else rng.choice(members, size=q, replace=False)
                for members, q in zip(self.strata, share, strict=True)
            ]
            drawn = rng.permutation(np.concatenate(parts))
        return np.asarray(drawn, dtype=np.int64)[rank::world_size]


def _spelled(sampling: Sampling) -> str:
    return f"balanced:{sampling.column}" if sampling.kind == "balanced" else sampling.kind


def _weights(frame: pl.DataFrame, manifest: Path, name: str) -> NDArray[np.float64]:
    """The selected cells' weights, checked: each finite and >= 0, some > 0."""
    weight = frame["weight"].cast(pl.Float64)
    if weight.null_count():
        msg = f"{name}: {manifest} has no weight for {weight.null_count()} selected cells"
        raise InputError(msg)
    w = weight.to_numpy()
    if not np.all(np.isfinite(w) & (w >= 0)) or w.sum() <= 0:
        bad = next((float(v) for v in w if not (np.isfinite(v) and v >= 0)), 0.0)
        msg = f"{name}: {manifest} has a weight of {bad} (weights must be finite, >= 0, not all 0)"
        raise InputError(msg)
    return np.asarray(w, dtype=np.float64)

"""The held-out split of ``scurate bench``: cells whose column equals a value are the test set,
every other cell is the pool, handed on as :class:`scurate._data.sources.RowSubset` sources that
read nothing outside their rows, so no value of a test cell can reach a fitted thing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._data.sources import RowSubset, Source
from scurate._engine.context import obs_reader
from scurate.errors import OptionError

RARE_FRACTION = 0.01  # a label under this fraction of the pool's labelled cells is rare


def column_values(
    manifest: pl.DataFrame, sources: Sequence[Source], name: str, option: str
) -> NDArray[np.object_]:
    """A column's values per cell as strings (None where missing): the manifest's harmonized
    column where it has any value, else the sources' obs column of that name."""
    if name in manifest.columns and manifest[name].null_count() < manifest.height:
        return np.asarray(manifest[name].cast(pl.String).to_list(), dtype=object)
    found = obs_reader(sources, manifest)(name)
    if found is None:
        filled = [c for c in manifest.columns if manifest[c].null_count() < manifest.height]
        msg = (
            f"{option}={name!r}: no such column (neither a filled manifest column: "
            f"{', '.join(filled)}; nor an obs column of any source)"
        )
        raise OptionError(msg)
    return np.asarray(found.to_list(), dtype=object)


@dataclass
class Split:
    """Which cells are tested, which are pooled, and the labels of both."""

    test: NDArray[np.bool_]  # over all cells, in source order
    pool_labels: NDArray[np.object_]  # the pool's cells in order; None where unlabelled
    test_labels: NDArray[np.object_]
    pool_sources: list[Source]
    test_sources: list[Source]
    info: dict[str, Any] = field(default_factory=dict)
    pool_labelled: NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        self.pool_labelled = np.array([v is not None for v in self.pool_labels], dtype=bool)


def _subsets(sources: Sequence[Source], mask: NDArray[np.bool_]) -> list[Source]:
    out: list[Source] = []
    at = 0
    for source in sources:
        rows = np.flatnonzero(mask[at : at + source.n_obs])
        at += source.n_obs
        if len(rows) == source.n_obs:
            out.append(source)
        elif len(rows):
            out.append(RowSubset(source, rows))
    return out


def held_out_values(
    manifest: pl.DataFrame, sources: Sequence[Source], column: str
) -> tuple[NDArray[np.object_], list[tuple[str, int]]]:
    """The holdout column's values per cell, and each distinct value with its number of cells
    (sorted by value), for ``--holdout COL=*``; one line where fewer than two values leave no
    pool to hold one out from."""
    values = column_values(manifest, sources, column, "holdout")
    counts = pl.Series([v for v in values if v is not None], dtype=pl.String).value_counts()
    seen = sorted((str(v), int(n)) for v, n in counts.iter_rows())
    if len(seen) < 2:
        shown = f"one value, {seen[0][0]!r}" if seen else "no value"
        msg = f"holdout='{column}=*': the column has {shown}, so no value can be held out"
        raise OptionError(msg)
    return values, seen


def split(
    sources: Sequence[Source],
    manifest: pl.DataFrame,
    holdout: tuple[str, str],
    label: str | None,
    *,
    values: NDArray[np.object_] | None = None,
    labels: NDArray[np.object_] | None = None,
) -> Split:
    """Cut the cells into test (``column == value`` of ``holdout``) and pool, with labels
    (none without ``label``). ``values`` and ``labels``, where given, are the columns already
    read by :func:`column_values`."""
    column, value = holdout
    if values is None:
        values = column_values(manifest, sources, column, "holdout")
    test = np.array([v == value for v in values], dtype=bool)
    if not test.any():
        seen = sorted({str(v) for v in values if v is not None})
        shown = ", ".join(seen[:12]) + (" ..." if len(seen) > 12 else "")
        msg = f"holdout='{column}={value}': no cell has that value (values: {shown})"
        raise OptionError(msg)
    if test.all():
        msg = f"holdout='{column}={value}': every cell has that value, which leaves no pool"
        raise OptionError(msg)
    info: dict[str, Any] = {
        "holdout": {"column": column, "value": value},
        "label": label,
        "n_cells": len(values),
        "n_pool": int((~test).sum()),
        "n_test": int(test.sum()),
    }
    pool_sources, test_sources = _subsets(sources, ~test), _subsets(sources, test)
    if label is None:
        none = np.full(len(values), None, dtype=object)
        info |= {"n_test_scored": int(test.sum()), "test_labels_not_scored": {}}
        info |= {"pool_label_counts": {}, "rare_labels": [], "rare_fraction": RARE_FRACTION}
        return Split(test, none[~test], none[test], pool_sources, test_sources, info)
    if labels is None:
        labels = column_values(manifest, sources, label, "label")
    pool_labels = labels[~test]
    present = {v for v in pool_labels if v is not None}
    if not present:
        msg = f"label={label!r}: no pool cell has a label"
        raise OptionError(msg)
    test_labels = labels[test]
    unscored: dict[str, int] = {}
    for v in test_labels:
        if v not in present:
            key = "(no label)" if v is None else str(v)
            unscored[key] = unscored.get(key, 0) + 1
    scored = int(sum(v in present for v in test_labels))
    if scored == 0:
        msg = (
            f"label={label!r}: none of the {int(test.sum())} test cells has a label that a pool "
            "cell has, so nothing can be scored"
        )
        raise OptionError(msg)
    counts = pl.Series(pool_labels[[v is not None for v in pool_labels]].tolist()).value_counts()
    pool_counts = {str(k): int(n) for k, n in counts.iter_rows()}
    labelled = sum(pool_counts.values())
    rare = sorted(k for k, n in pool_counts.items() if n < RARE_FRACTION * labelled)
    info |= {
        "n_test_scored": scored,
        "test_labels_not_scored": dict(sorted(unscored.items())),
        "pool_label_counts": dict(sorted(pool_counts.items(), key=lambda kv: -kv[1])),
        "rare_labels": rare,
        "rare_fraction": RARE_FRACTION,
    }
    return Split(test, pool_labels, test_labels, pool_sources, test_sources, info)

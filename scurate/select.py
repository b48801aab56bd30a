"""The selection driver: the context a policy sees, and the checks on what it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate.errors import OptionError, PluginError, ScurateError
from scurate.plugins import Registered


@dataclass
class SelectionContext:
    """What a policy receives.

    Attributes
    ----------
    embeddings
        float32 (n_cells, n_dims), C-contiguous, one row per pool cell.
    manifest
        The pool's manifest rows (polars), in the same order as ``embeddings``.
    rng
        A seeded generator: a policy draws all its randomness from it.
    params
        ``--param key=value`` strings given for this run.
    info
        Diagnostics a policy may leave for the report (``"covering_radius"``: the radius after
        each pick, as a sequence of floats).
    covered
        With ``--reference``: float32, each pool cell's distance to its nearest reference cell
        (the corpus the team already has), so a policy can treat that corpus as already
        covered. None without a reference.
    """

    embeddings: NDArray[np.float32]
    manifest: pl.DataFrame
    rng: np.random.Generator
    params: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    covered: NDArray[np.float32] | None = None

    @property
    def n_cells(self) -> int:
        return int(self.embeddings.shape[0])

    def param(self, key: str, default: str) -> str:
        """A ``--param`` value, or ``default`` when it was not given."""
        return self.params.get(key, default)


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` to a dict, or one line naming the malformed pair."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            msg = f"--param '{pair}': expected key=value"
            raise OptionError(msg)
        params[key.strip()] = value.strip()
    return params


def run_policy(policy: Registered, ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """Run a policy and check that it returned ``budget`` distinct rows in range."""
    who = f"policy '{policy.name}' (plugin '{policy.plugin}')"
    try:
        result = policy.obj(ctx, budget)
    except ScurateError:
        raise
    except Exception as exc:
        msg = f"{who} failed: {type(exc).__name__}: {exc}"
        raise PluginError(msg) from exc
    order = np.asarray(result)
    if order.ndim != 1 or (order.size and order.dtype.kind not in "iu"):
        msg = f"{who} returned {order.dtype} of shape {order.shape}; expected 1-D integer rows"
        raise PluginError(msg)
    order = order.astype(np.int64)
    if len(order) != budget:
        msg = f"{who} returned {len(order)} rows for a budget of {budget}"
        raise PluginError(msg)
    if len(order) and (order.min() < 0 or order.max() >= ctx.n_cells):
        msg = f"{who} returned rows outside 0..{ctx.n_cells - 1}"
        raise PluginError(msg)
    if len(np.unique(order)) != len(order):
        msg = f"{who} returned the same row more than once"
        raise PluginError(msg)
    return order


def check_budget(budget: int, pool: int) -> None:
    if budget < 1:
        msg = f"--budget {budget}: must be at least 1"
        raise OptionError(msg)
    if budget > pool:
        msg = f"--budget {budget} is more than the {pool} cells in the pool"
        raise OptionError(msg)

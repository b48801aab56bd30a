"""The options of ``scurate bench``, parsed and checked once where they come in: the held-out
split, what to compare (policies, budgets, seeds, parameters) and the pool's own options (those
of :class:`scurate._engine.options.PoolOptions`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scurate._engine.options import (
    DEFAULT_POLICY,
    PoolOptions,
    Quota,
    SelectOptions,
    check_seed,
    check_strata,
    check_text,
    parse_params,
)
from scurate.errors import OptionError

REPRESENTATIONS = ("pca", "autoencoder")
DEFAULT_BUDGETS = "0.05,0.1,0.25"
DEFAULT_POLICIES = f"random,{DEFAULT_POLICY}"  # the baseline and select's default
EVERY_VALUE = "*"  # --holdout COL=*: every value of COL held out in turn


@dataclass(frozen=True)
class Budget:
    """A budget as given (``0.05`` is a fraction of the pool, ``500`` a number of cells)."""

    text: str
    value: float

    @property
    def is_fraction(self) -> bool:
        return "." in self.text or "e" in self.text.lower()

    def as_given(self) -> float | int:
        return self.value if self.is_fraction else int(self.value)

    def cells(self, pool: int) -> int:
        return max(1, round(self.value * pool)) if self.is_fraction else int(self.value)


def parse_budgets(budgets: str | Sequence[Any]) -> list[Budget]:
    """``"0.05,0.1,500"`` (or a list) to budgets: fractions in (0, 1) or whole cells >= 1."""
    parts = budgets.split(",") if isinstance(budgets, str) else [str(b) for b in budgets]
    out: list[Budget] = []
    for raw in (p.strip() for p in parts):
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        budget = Budget(raw, value)
        ok = math.isfinite(value) and (
            0 < value < 1 if budget.is_fraction else value >= 1 and value == int(value)
        )
        if not raw or not ok:
            msg = (
                f"budgets='{raw}': expected a fraction of the pool in (0, 1), like 0.05, "
                "or a whole number of cells, like 500"
            )
            raise OptionError(msg)
        out.append(budget)
    if len({b.text for b in out}) != len(out):
        msg = f"budgets='{','.join(b.text for b in out)}': a budget is named twice"
        raise OptionError(msg)
    return out


def parse_holdout(holdout: str) -> tuple[str, str]:
    """``COL=VALUE`` (or ``COL=*``, every value in turn) to (column, value)."""
    column, sep, value = holdout.partition("=")
    if not sep or not column.strip() or not value.strip():
        msg = (
            f"holdout={holdout!r}: expected COLUMN=VALUE, like donor_id=D3 or assay=Drop-seq, "
            "or COLUMN=* for every value in turn"
        )
        raise OptionError(msg)
    return column.strip(), value.strip()


def parse_policies(policies: str | Sequence[str]) -> list[str]:
    """Policy names, ``random`` first (added when missing: every difference is taken from it)."""
    parts = policies.split(",") if isinstance(policies, str) else list(policies)
    names = [p.strip() for p in parts if p.strip()]
    if len(set(names)) != len(names):
        msg = f"policies='{','.join(names)}': a policy is named twice"
        raise OptionError(msg)
    return ["random", *[n for n in names if n != "random"]]


def parse_representations(representations: str | Sequence[str]) -> list[str]:
    """``pca`` (always) and optionally ``autoencoder`` (needs torch)."""
    parts = representations.split(",") if isinstance(representations, str) else representations
    names = [p.strip() for p in parts if p.strip()]
    unknown = [n for n in names if n not in REPRESENTATIONS]
    if unknown:
        msg = (
            f"representations={unknown[0]!r}: not a representation (choose from: "
            f"{', '.join(REPRESENTATIONS)})"
        )
        raise OptionError(msg)
    return ["pca", *(["autoencoder"] if "autoencoder" in names else [])]


def parse_scoped_params(pairs: Sequence[str], policies: Sequence[str]) -> dict[str, dict[str, str]]:
    """``key=value`` for every policy, or ``policy:key=value`` for one."""
    out: dict[str, dict[str, str]] = {p: {} for p in policies}
    for pair in pairs:
        head, sep, _ = pair.partition("=")
        name, colon, key = head.partition(":")
        if sep and colon:
            if name.strip() not in out:
                shown = ",".join(policies)
                msg = f"params={pair!r}: {name.strip()!r} is not among policies='{shown}'"
                raise OptionError(msg)
            value = pair.partition("=")[2]
            out[name.strip()].update(parse_params([f"{key}={value}"]))
        else:
            for given in out.values():
                given.update(parse_params([pair]))
    return out


@dataclass(frozen=True, kw_only=True)
class BenchOptions(PoolOptions):
    """``bench``: which cells are held out, what is compared on them, and the pool's options.

    Attributes
    ----------
    holdout
        ``COL=VALUE``: a manifest column (harmonized: ``donor_id``, ``assay``, ``dataset_id``...)
        or an obs column of the sources; its cells are the test set. ``COL=*`` holds out every
        value of ``COL`` in turn and adds a summary across them.
    label
        The column the classifiers learn (``cell_type``; harmonized where it is a canonical
        field, else read from obs). None: only the label-free metrics are measured.
    budgets
        Fractions of the pool (``0.05``) or numbers of cells (``500``), as a comma list or a list.
    policies
        Registered policy names; ``random`` is always run, first.
    seeds
        Seeds 0..seeds-1, each one a ``select`` seed for every policy and budget.
    params
        ``key=value`` for every policy, or ``policy:key=value`` for one.
    representations
        ``pca`` (always), and ``autoencoder`` for a small torch autoencoder learned from the
        selected cells, scored by the same kNN transfer.
    keep_duplicates
        As for ``select``: let the policies choose exact copies and near duplicates.
    strata, quota
        As for ``select``: columns whose value combinations divide each budget (a harmonized
        manifest column, or an obs column of the sources), and how.
    """

    holdout: str
    label: str | None = None
    budgets: tuple[Budget, ...] = DEFAULT_BUDGETS  # type: ignore[assignment]
    policies: tuple[str, ...] = DEFAULT_POLICIES  # type: ignore[assignment]
    seeds: int = 5
    params: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    representations: tuple[str, ...] = "pca"  # type: ignore[assignment]
    keep_duplicates: bool = False
    strata: tuple[str, ...] | None = None
    quota: Quota = field(default_factory=lambda: Quota("proportional"))

    def __post_init__(self) -> None:
        super().__post_init__()
        column, value = parse_holdout(self.holdout)
        self._set("holdout", f"{column}={value}")
        check_text(self.label, "label")
        if self.label is not None:
            self._set("label", self.label.strip())
        strata, quota = check_strata(self.strata, self.quota)
        self._set("strata", strata)
        self._set("quota", quota)
        self._set("budgets", tuple(parse_budgets(self.budgets)))
        self._set("policies", tuple(parse_policies(self.policies)))
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            msg = f"seeds={self.seeds!r}: must be at least 1"
            raise OptionError(msg)
        given = self.params
        pairs = [f"{k}={v}" for k, v in given.items()] if isinstance(given, Mapping) else given
        self._set("params", parse_scoped_params(pairs, self.policies))
        self._set("representations", tuple(parse_representations(self.representations)))
        if self.label is None and "autoencoder" in self.representations:
            msg = "representations='autoencoder': needs `label` (it is scored by label transfer)"
            raise OptionError(msg)

    @property
    def held_out(self) -> tuple[str, str]:
        """(column, value) of the test cells; the value is ``*`` for every value in turn."""
        column, _, value = self.holdout.partition("=")
        return column, value

    @property
    def every_value(self) -> bool:
        """``COL=*``: every value of the column is held out in turn."""
        return self.held_out[1] == EVERY_VALUE

    def to_report(self) -> dict[str, Any]:
        out = super().to_report()
        out["quota"] = None if self.strata is None else str(self.quota)
        return out

    def selection(self, policy: str, cells: int, seed: int) -> SelectOptions:
        """The options of one ``select`` run on the pool: ``policy`` for ``cells`` cells with
        ``seed``, as ``select`` would run it."""
        check_seed(seed)
        return SelectOptions(
            budget=cells,
            policy=policy,
            params=self.params[policy],
            keep_duplicates=self.keep_duplicates,
            strata=self.strata,
            quota=self.quota,
            qc=self.qc,
            seed=seed,
        )

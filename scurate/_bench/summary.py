"""bench.json's ``summary``: per policy and budget, the mean and a 95 % t-interval over seeds of
every metric, and the difference from ``random`` paired by seed with its interval and a verdict
(``won`` or ``lost`` where the interval excludes 0, else ``tied``; the direction is flipped for
distances, where lower is better).

Across holdouts (``--holdout COL=*``), :func:`tally` counts those verdicts: per policy and
budget, and per policy over every budget, how many were won, tied and lost, for each metric."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from scurate._bench.proxies import LOWER_IS_BETTER, METRICS


def _interval(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """Mean and 95 % t-interval (None with fewer than two values)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, None, None
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def _verdict(metric: str, low: float | None, high: float | None) -> str | None:
    if low is None or high is None:
        return None
    better_if_positive = metric not in LOWER_IS_BETTER
    if low > 0:
        return "won" if better_if_positive else "lost"
    if high < 0:
        return "lost" if better_if_positive else "won"
    return "tied"


def summarize(
    records: Sequence[Mapping[str, Any]], metrics: Sequence[str] = METRICS
) -> list[dict[str, Any]]:
    """Per (policy, budget): mean and 95 % interval over seeds of every metric, the mean recall
    per label, and the difference from ``random`` paired by seed."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["policy"], str(rec["budget"])), []).append(rec)
    out = []
    for (policy, budget), recs in groups.items():
        row: dict[str, Any] = {
            "policy": policy,
            "budget": recs[0]["budget"],
            "n_selected": recs[0]["n_selected"],
            "n_seeds": len(recs),
        }
        for metric in metrics:
            values = [r[metric] for r in recs if r[metric] is not None]
            if values:
                mean, low, high = _interval(values)
                row[metric] = {"mean": mean, "ci_low": low, "ci_high": high}
            else:
                row[metric] = None
        labels = recs[0].get("recall_per_label") or {}
        row["recall_per_label"] = {
            lab: float(np.mean([r["recall_per_label"][lab] for r in recs])) for lab in labels
        }
        baseline = {r["seed"]: r for r in groups.get(("random", budget), [])}
        if policy != "random" and baseline:
            diffs: dict[str, Any] = {}
            for metric in metrics:
                pairs = [
                    r[metric] - baseline[r["seed"]][metric]
                    for r in recs
                    if r["seed"] in baseline
                    and r[metric] is not None
                    and baseline[r["seed"]][metric] is not None
                ]
                if not pairs:
                    diffs[metric] = None
                    continue
                mean, low, high = _interval(pairs)
                diffs[metric] = {
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "verdict": _verdict(metric, low, high),
                }
            row["vs_random"] = diffs
        out.append(row)
    return out


VERDICTS = ("won", "tied", "lost", "no_verdict")  # no_verdict: one seed gives no interval


def _count(cell: dict[str, Any], diff: Mapping[str, Any] | None) -> None:
    if diff is not None:
        cell[diff["verdict"] or "no_verdict"] += 1
        cell["diffs"].append(diff["mean"])


def _finish(cell: dict[str, Any]) -> dict[str, Any]:
    diffs = cell.pop("diffs")
    cell["mean_diff"] = float(np.mean(diffs)) if diffs else None
    return cell


def tally(
    summaries: Sequence[Sequence[Mapping[str, Any]]], metrics: Sequence[str] = METRICS
) -> dict[str, list[dict[str, Any]]]:
    """Wins, ties and losses against random over several holdouts' summaries: ``by_budget``
    (per policy and budget: one verdict per holdout) and ``overall`` (per policy: one per
    holdout and budget), each metric as ``{won, tied, lost, no_verdict, mean_diff}`` where
    ``mean_diff`` is the mean of the paired differences from random."""

    def empty(**head: Any) -> dict[str, Any]:
        cells = {m: {**dict.fromkeys(VERDICTS, 0), "diffs": []} for m in metrics}
        return {**head, "n": 0, **cells}

    by_budget: dict[tuple[str, str], dict[str, Any]] = {}
    overall: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        for row in summary:
            if "vs_random" not in row:
                continue
            policy = row["policy"]
            key = (policy, str(row["budget"]))
            one = by_budget.setdefault(key, empty(policy=policy, budget=row["budget"]))
            every = overall.setdefault(policy, empty(policy=policy))
            for out in (one, every):
                out["n"] += 1
                for metric in metrics:
                    _count(out[metric], row["vs_random"].get(metric))
    for out in [*by_budget.values(), *overall.values()]:
        for metric in metrics:
            _finish(out[metric])
    return {"by_budget": list(by_budget.values()), "overall": list(overall.values())}

"""bench.json's ``summary``: per policy and budget, the mean and a 95 % t-interval over seeds of
every metric, and the difference from ``random`` paired by seed with its interval and a verdict
(``won`` or ``lost`` where the interval excludes 0, else ``tied``; the direction is flipped for
distances, where lower is better)."""

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
        labels = recs[0]["recall_per_label"]
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

"""The protocol that chooses ``select``'s default policy on held-out data.

Every real dataset in ``../shared/data`` (see its README), each batch held out in turn:

- CellBench lung cell lines, each of its five source files (four CEL-seq2 plates and the
  Drop-seq run) held out, label ``cell_line`` (harmonized from ``cell_line_demuxlet``);
- Baron mouse pancreas, each of its two donors held out, label ``cell_type`` (harmonized from
  ``assigned_cluster``; five types are under 1 % of a donor).

Each split runs ``scurate.bench`` with every policy at budgets of 1, 5, 10 and 25 % of the pool
over 10 seeds; the summary's paired difference from random (by seed) and its 95 % interval give
a verdict per (split, budget, metric): won or lost where the interval excludes 0, else tied.

**The rule.** Among the label-free policies (those that see only the embedding and the scores:
not ``reweight``, which needs labels), the default is the one with the fewest losses on
``macro_f1`` over every split and budget (none, where a policy manages that), then the most
wins on ``macro_f1`` plus ``test_to_selected_mean`` (the supervised proxy, and how near the
held-out cells the selection lies), then the fewest losses on those two, then the larger sum of
the mean ``macro_f1`` differences. The script says whether the pick has no ``macro_f1`` loss
at all. The script prints every split's table, then the wins/ties/losses of
every policy and the policy the rule picks, and writes ``protocol.json`` under ``--out``.

    python benchmarks/bench_default_policy.py [--seeds 10] [--out bench-out/default-policy]

About 2 minutes per split and policy at 10 seeds on 2 idle cores. Never run in CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata as ad
from scurate._bench.run import bench_to_dir
from scurate._plugins.registry import discover

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CELLBENCH = DATA / "cellbench_lung_celllines" / "cellbench_lung_celllines.h5ad"
BARON = DATA / "baron_mouse_pancreas" / "baron_mouse_pancreas.h5ad"
# (dataset, file, obs column whose every value is held out in turn, label)
DATASETS = (
    ("cellbench", CELLBENCH, "source_file", "cell_line"),
    ("baron", BARON, "source_file", "cell_type"),
)
BUDGETS = "0.01,0.05,0.1,0.25"
NEEDS_LABELS = frozenset({"reweight"})
RULE_METRICS = ("macro_f1", "test_to_selected_mean")
SHOWN = ("macro_f1", "rare_recall", "knn_transfer_f1", "test_to_selected_mean")


def held_out_values(path: Path, column: str) -> list[str]:
    """Every value of the obs ``column`` of ``path``, in sorted order."""
    obs = ad.read_h5ad(path, backed="r").obs
    return sorted(str(v) for v in obs[column].astype(str).unique())


def diff_text(row: dict[str, Any], metric: str) -> str:
    diff = row.get("vs_random", {}).get(metric)
    value = row.get(metric)
    if value is None:
        return "–"
    text = f"{value['mean']:.3f}"
    if diff and diff["ci_low"] is not None:
        text += f" ({diff['mean']:+.3f} **{diff['verdict']}**)"
    return text


def split_table(name: str, payload: dict[str, Any]) -> str:
    split = payload["split"]
    lines = [
        f"#### {name}: pool {split['n_pool']}, test {split['n_test_scored']} scored",
        "",
        "| policy | budget | cells | " + " | ".join(SHOWN) + " |",
        "|---|---|---|" + "---|" * len(SHOWN),
    ]
    for row in payload["summary"]:
        lines.append(
            f"| {row['policy']} | {row['budget']} | {row['n_selected']} | "
            + " | ".join(diff_text(row, m) for m in SHOWN)
            + " |"
        )
    return "\n".join(lines)


def tally(splits: dict[str, dict[str, Any]], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per policy and metric: won/tied/lost over every split and budget, the sum of the mean
    differences, and where it lost."""
    out: dict[str, dict[str, Any]] = {}
    for name, payload in splits.items():
        for row in payload["summary"]:
            if row["policy"] == "random":
                continue
            mine = out.setdefault(row["policy"], {})
            for metric in metrics:
                diff = row.get("vs_random", {}).get(metric)
                if not diff or diff["verdict"] is None:
                    continue
                cell = mine.setdefault(
                    metric, {"won": 0, "tied": 0, "lost": 0, "sum_diff": 0.0, "losses": []}
                )
                cell[diff["verdict"]] += 1
                cell["sum_diff"] += diff["mean"]
                if diff["verdict"] == "lost":
                    cell["losses"].append(f"{name}@{row['budget']}")
    return out


def choose_default(counts: dict[str, dict[str, Any]]) -> tuple[str | None, list[str]]:
    """The rule of the module doc: (the policy it picks or None, a line on each policy)."""
    ranked, why = [], []
    for policy, by_metric in counts.items():
        if policy in NEEDS_LABELS:
            why.append(f"{policy}: needs labels, not a candidate")
            continue
        f1 = by_metric.get("macro_f1", {"lost": 0, "losses": []})
        wins = sum(by_metric.get(m, {}).get("won", 0) for m in RULE_METRICS)
        losses = sum(by_metric.get(m, {}).get("lost", 0) for m in RULE_METRICS)
        total = by_metric.get("macro_f1", {}).get("sum_diff", 0.0)
        ranked.append((-f1["lost"], wins, -losses, total, policy))
        lost_at = f" (at {', '.join(f1['losses'])})" if f1["losses"] else ""
        why.append(
            f"{policy}: {f1['lost']} macro_f1 losses{lost_at}; {wins} wins and {losses} losses "
            f"on {' + '.join(RULE_METRICS)}"
        )
    ranked.sort(reverse=True)
    return (ranked[0][4] if ranked else None), why


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", default=BUDGETS)
    parser.add_argument("--policies", default=None, help="default: every registered policy")
    parser.add_argument("--datasets", default="cellbench,baron")
    parser.add_argument("--out", type=Path, default=Path("bench-out/default-policy"))
    parser.add_argument(
        "--from-saved",
        action="store_true",
        help="run nothing: tally the bench.json files under --out (runs split across processes)",
    )
    args = parser.parse_args()
    if args.from_saved:
        saved = {
            f"{p.parent.name}": json.loads(p.read_text())
            for p in sorted(args.out.glob("*/bench.json"))
        }
        return report(saved, args.out, 0.0)
    if not CELLBENCH.exists() or not BARON.exists():
        print(f"no real data under {DATA}; see ../shared/data/README.md", file=sys.stderr)
        return 1
    policies = args.policies or ",".join(sorted(discover().registries["policies"]))
    wanted = set(args.datasets.split(","))
    splits: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for dataset, path, column, label in DATASETS:
        if dataset not in wanted:
            continue
        for value in held_out_values(path, column):
            name = f"{dataset}: hold out {value}"
            result = bench_to_dir(
                [path],
                out=args.out / f"{dataset}-{value}",
                overwrite=True,  # a rerun of this script replaces its own earlier results
                holdout=f"{column}={value}",
                label=label,
                budgets=args.budgets,
                policies=policies,
                seeds=args.seeds,
                params=[f"reweight:label={label}"] if "reweight" in policies else [],
            )
            payload = result.to_dict()
            splits[name] = payload
            print(split_table(name, payload), flush=True)
            print(f"(took {payload['timings_s']['total']:.1f} s)\n", flush=True)
    return report(splits, args.out, started)


def report(splits: dict[str, dict[str, Any]], out: Path, started: float) -> int:
    """Print the wins/ties/losses of every policy over ``splits`` and the rule's pick; write
    ``protocol.json`` under ``out``."""
    metrics = sorted({*RULE_METRICS, *SHOWN})
    counts = tally(splits, metrics)
    print("#### Against random over every split and budget (won / tied / lost)\n")
    print("| policy | " + " | ".join(metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for policy, by_metric in counts.items():
        cells = [
            "{won} / {tied} / {lost}".format(**by_metric[m]) if m in by_metric else "–"
            for m in metrics
        ]
        print(f"| {policy} | " + " | ".join(cells) + " |")
    default, why = choose_default(counts)
    clean = default is not None and not counts[default].get("macro_f1", {}).get("lost", 0)
    print(f"\nthe rule picks: {default} ({'no' if clean else 'not without a'} macro_f1 loss)")
    for line in why:
        print(f"- {line}")
    if started:
        print(f"\n({time.perf_counter() - started:.0f} s in all)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "protocol.json").write_text(
        json.dumps(
            {"splits": list(splits), "counts": counts, "default": default, "why": why}, indent=1
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

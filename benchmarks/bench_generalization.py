"""Does a curated set generalize better than random cells to a protocol or donor it never saw?

Runs ``scurate.bench`` on the real datasets in ``../shared/data`` (see its README):

- CellBench lung cell lines: hold out the Drop-seq protocol (``source_file=sc_dropseq``),
  select from the CEL-seq2 plates, label ``cell_line`` (harmonized from ``cell_line_demuxlet``);
- Baron mouse pancreas: hold out each donor in turn (``source_file=GSM...``), label
  ``cell_type`` (harmonized from ``assigned_cluster``; 5 labels are under 1 % of a donor).

Every policy at every budget over ``--seeds`` seeds; prints one markdown table per split
(mean ± half the 95 % interval, and the paired difference from random with its interval and
verdict) and writes each run's bench.json/bench.html under ``--out``.

    python benchmarks/bench_generalization.py [--seeds 10] [--out bench-out/generalization]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from scurate._bench.run import bench_to_dir

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CELLBENCH = DATA / "cellbench_lung_celllines" / "cellbench_lung_celllines.h5ad"
BARON = DATA / "baron_mouse_pancreas" / "baron_mouse_pancreas.h5ad"

SPLITS = (
    ("cellbench_dropseq", CELLBENCH, "source_file=sc_dropseq", "cell_line"),
    ("baron_donor1", BARON, "source_file=GSM2230761_mouse1_umifm_counts.csv", "cell_type"),
    ("baron_donor2", BARON, "source_file=GSM2230762_mouse2_umifm_counts.csv", "cell_type"),
)
SHOWN = ("macro_f1", "accuracy", "rare_recall", "knn_transfer_f1", "test_to_selected_mean")
AUTOENCODER = "knn_transfer_f1_autoencoder"


def cell(row: dict[str, Any], metric: str) -> str:
    value = row[metric]
    if value is None:
        return "–"
    text = f"{value['mean']:.3f}"
    if value["ci_low"] is not None:
        text += f" ± {(value['ci_high'] - value['ci_low']) / 2:.3f}"
    diff = row.get("vs_random", {}).get(metric)
    if diff and diff["ci_low"] is not None:
        text += (
            f"<br>{diff['mean']:+.3f} [{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}] "
            f"**{diff['verdict']}**"
        )
    return text


def table(name: str, payload: dict[str, Any]) -> str:
    split = payload["split"]
    shown = SHOWN + ((AUTOENCODER,) if AUTOENCODER in payload["metrics"] else ())
    lines = [
        f"### {name}: hold out {split['holdout']['column']}={split['holdout']['value']}",
        "",
        f"pool {split['n_pool']} cells, test {split['n_test']} ({split['n_test_scored']} scored); "
        f"not scored: {split['test_labels_not_scored'] or 'none'}; rare labels: "
        f"{', '.join(split['rare_labels']) or 'none'}; seeds {payload['parameters']['seeds']}",
        "",
        "| policy | budget | cells | " + " | ".join(shown) + " |",
        "|---|---|---|" + "---|" * len(shown),
    ]
    for row in payload["summary"]:
        lines.append(
            f"| {row['policy']} | {row['budget']} | {row['n_selected']} | "
            + " | ".join(cell(row, m) for m in shown)
            + " |"
        )
    full = payload["full_pool"]
    lines.append(
        f"| whole pool | 1 | {full['n_selected']} | "
        + " | ".join("–" if full[m] is None else f"{full[m]:.3f}" for m in shown)
        + " |"
    )
    return "\n".join(lines)


def verdicts(payload: dict[str, Any]) -> str:
    """Per policy: how many (budget, metric) cells it won, tied and lost against random."""
    counts: dict[str, dict[str, int]] = {}
    for row in payload["summary"]:
        for metric in payload["metrics"]:
            diff = row.get("vs_random", {}).get(metric)
            if diff and diff["verdict"]:
                mine = counts.setdefault(row["policy"], {"won": 0, "tied": 0, "lost": 0})
                mine[diff["verdict"]] += 1
    return "; ".join(
        f"{p}: {c['won']} won, {c['tied']} tied, {c['lost']} lost" for p, c in counts.items()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", default="0.05,0.1,0.25")
    parser.add_argument("--policies", default="random,kcenter,facility,sketch,reweight")
    parser.add_argument("--representations", default="pca", help="pca or pca,autoencoder")
    parser.add_argument("--out", type=Path, default=Path("bench-out/generalization"))
    args = parser.parse_args()
    if not CELLBENCH.exists() or not BARON.exists():
        print(f"no real data under {DATA}; see ../shared/data/README.md", file=sys.stderr)
        return 1
    for name, path, holdout, label in SPLITS:
        result = bench_to_dir(
            [path],
            out=args.out / name,
            overwrite=True,  # a rerun of this script replaces its own earlier results
            holdout=holdout,
            label=label,
            budgets=args.budgets,
            policies=args.policies,
            seeds=args.seeds,
            representations=args.representations,
            params=[f"reweight:label={label}"] if "reweight" in args.policies else [],
        )
        payload = result.to_dict()
        print(table(name, payload))
        print()
        print(f"against random over every budget and metric: {verdicts(payload)}")
        print(f"(took {payload['timings_s']['total']:.1f} s; {payload['outputs']['html']})")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

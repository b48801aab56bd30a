"""bench.html: the learning curves (every metric against the budget, one line per policy, the
whole pool as a dashed line) and the recall per label, in one self-contained page (inline SVG,
no script, no network); with ``--holdout COL=*``, the wins/ties/losses against random across
the holdouts first, then one such section per holdout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from scurate._bench.proxies import AUTOENCODER_METRIC, LOWER_IS_BETTER, METRICS
from scurate._report.style import CSS, figure, svg

COLORS = ("#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")

TITLES = {
    "macro_f1": "macro-F1 (logistic regression)",
    "accuracy": "accuracy (logistic regression)",
    "rare_recall": "recall of rare labels",
    "knn_transfer_f1": "kNN transfer macro-F1 (PCA of the selection)",
    AUTOENCODER_METRIC: "kNN transfer macro-F1 (autoencoder of the selection)",
    "test_to_selected_mean": "test cell to nearest selected (mean)",
    "test_to_selected_max": "test cell to nearest selected (max)",
    "knn_coverage": "test cells with a selected cell among their 5 nearest pool cells",
}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _color(policies: Sequence[str], name: str) -> str:
    return COLORS[policies.index(name) % len(COLORS)]


def _chart(
    metric: str,
    summary: Sequence[Mapping[str, Any]],
    policies: Sequence[str],
    full: float | None,
) -> str:
    """One learning curve, drawn with matplotlib in report.html's look: the mean over seeds
    per policy and budget with its 95 % interval, the policies nudged apart on the x axis so
    that coinciding lines stay visible, scores kept in [0, 1], the whole pool dashed."""
    points = [(r["policy"], r["n_selected"], r[metric]) for r in summary if r[metric] is not None]
    if not points:
        return (
            f'<p class="note"><b>{escape(TITLES[metric])}</b>: no value to draw (no rare label '
            "in the test set?)</p>"
        )
    xs = sorted({p[1] for p in points})
    log_x = len(xs) > 1 and xs[-1] / xs[0] > 3
    shown = [p for p in policies if any(q == p for q, _, _ in points)]
    name = f"bench-{metric}"
    with figure(name, 4.6, 2.9) as (fig, ax):
        for k, policy in enumerate(shown):
            mine = sorted((x, m) for q, x, m in points if q == policy)
            # a nudge of up to +-3 % of each x (log axis: the same look at every budget)
            nudge = 1 + 0.03 * (k - (len(shown) - 1) / 2) / max(len(shown), 1)
            x = [v * nudge if log_x else v + (nudge - 1) * (xs[-1] - xs[0] or 1) for v, _ in mine]
            y = [m["mean"] for _, m in mine]
            low = [m["mean"] - m["ci_low"] if m["ci_low"] is not None else 0.0 for _, m in mine]
            high = [m["ci_high"] - m["mean"] if m["ci_high"] is not None else 0.0 for _, m in mine]
            ax.errorbar(
                x,
                y,
                yerr=[low, high],
                marker="o",
                ms=3.5,
                lw=1.6,
                capsize=2,
                color=_color(policies, policy),
                label=policy,
            )
        if full is not None:
            ax.axhline(full, color="#000000", lw=1, ls=(0, (5, 4)), label="whole pool")
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator(xs))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlim(xs[0] * 0.8 if log_x else xs[0] - 1, xs[-1] * 1.25 if log_x else xs[-1] + 1)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        if metric not in LOWER_IS_BETTER:  # a score: its axis never runs past [0, 1]
            bottom, top = ax.get_ylim()
            ax.set_ylim(max(bottom, 0.0), min(top, 1.0))
        ax.set_xlabel(f"cells selected{' (log scale)' if log_x else ''}")
        better = " (lower is better)" if metric in LOWER_IS_BETTER else ""
        ax.set_title(f"{TITLES[metric]}{better}")
        return svg(fig, name)


def _legend(policies: Sequence[str]) -> str:
    items = [
        f'<span style="color:{_color(policies, p)}">&#9632;</span> {escape(p)}' for p in policies
    ]
    items.append("<span>- - -</span> whole pool")
    return '<p class="legend">' + " &nbsp; ".join(items) + "</p>"


def _summary_table(summary: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> str:
    head = "".join(f"<th>{escape(m)}</th>" for m in metrics)
    rows = []
    for r in summary:
        cells = []
        for m in metrics:
            value = r[m]
            text = "–"
            if value is not None:
                text = _fmt(value["mean"])
                if value["ci_low"] is not None:
                    text += f" <small>[{_fmt(value['ci_low'])}, {_fmt(value['ci_high'])}]</small>"
            diff = r.get("vs_random", {}).get(m)
            if diff:
                verdict = diff["verdict"] or ""
                text += (
                    f'<br><span class="{verdict}">{diff["mean"]:+.3f} vs random'
                    f"{' · ' + verdict if verdict else ''}</span>"
                )
            cells.append(f"<td>{text}</td>")
        rows.append(
            f"<tr><td>{escape(r['policy'])}</td><td>{r['budget']}</td><td>{r['n_selected']}</td>"
            + "".join(cells)
            + "</tr>"
        )
    return (
        "<table><tr><th>policy</th><th>budget</th><th>cells</th>"
        + head
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def _recall_tables(payload: Mapping[str, Any], policies: Sequence[str]) -> str:
    summary = payload["summary"]
    split = payload["split"]
    counts: Mapping[str, int] = split["pool_label_counts"]
    rare = set(split["rare_labels"])
    labels = payload["proxies"]["scored_labels"]
    full = payload["full_pool"]["recall_per_label"]
    out = []
    for budget in dict.fromkeys(str(r["budget"]) for r in summary):
        by_policy = {r["policy"]: r for r in summary if str(r["budget"]) == budget}
        head = "".join(f"<th>{escape(p)}</th>" for p in policies if p in by_policy)
        rows = []
        for lab in labels:
            cells = []
            for p in policies:
                if p not in by_policy:
                    continue
                v = by_policy[p]["recall_per_label"].get(lab)
                shade = 0 if v is None else round(255 - 140 * v)
                cells.append(
                    f'<td style="background:rgb({shade},{min(255, shade + 60)},255)">'
                    f"{_fmt(v, 2)}</td>"
                )
            mark = " <small>(rare)</small>" if lab in rare else ""
            rows.append(
                f"<tr><td>{escape(lab)}{mark}</td><td>{counts.get(lab, 0)}</td>"
                + "".join(cells)
                + f"<td>{_fmt(full.get(lab), 2)}</td></tr>"
            )
        n = next(iter(by_policy.values()))["n_selected"]
        out.append(
            f"<h3>budget {escape(budget)} ({n} cells)</h3><table><tr><th>label</th>"
            f"<th>pool cells</th>{head}<th>whole pool</th></tr>" + "".join(rows) + "</table>"
        )
    return "".join(out)


def _tally_table(across: Mapping[str, Any], metrics: Sequence[str]) -> str:
    """Won/tied/lost against random per policy and budget, then per policy over all budgets."""
    head = "".join(f"<th>{escape(m)}</th>" for m in metrics)
    rows = []
    for r in [*across["by_budget"], *across["overall"]]:
        cells = []
        for m in metrics:
            c = r[m]
            text = f'<span class="won">{c["won"]}</span>/{c["tied"]}/<span class="lost">'
            text += f"{c['lost']}</span>"
            if c["no_verdict"]:
                text += f" <small>({c['no_verdict']} no verdict)</small>"
            if c["mean_diff"] is not None:
                text += f"<br><small>mean {c['mean_diff']:+.3f}</small>"
            cells.append(f"<td>{text}</td>")
        budget = escape(str(r["budget"])) if "budget" in r else "<b>all</b>"
        rows.append(
            f"<tr><td>{escape(r['policy'])}</td><td>{budget}</td><td>{r['n']}</td>"
            + "".join(cells)
            + "</tr>"
        )
    return (
        "<table><tr><th>policy</th><th>budget</th><th>verdicts</th>"
        + head
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def _section(part: Mapping[str, Any], params: Mapping[str, Any], metrics: list[str]) -> str:
    """One holdout: what was held out and scored, the curves, the summary, recall per label."""
    split = part["split"]
    policies: list[str] = list(params["policies"])
    full = part["full_pool"]
    charts = "".join(
        f'<div class="chart">{_chart(m, part["summary"], policies, full.get(m))}</div>'
        for m in metrics
    )
    holdout = split["holdout"]
    proxies = part["proxies"]
    distances = (
        f"Distances: {escape(proxies['distance_space'])}; coverage: "
        f"{escape(proxies['knn_coverage'])}."
    )
    if split["label"] is None:
        about = (
            f"<p>No label: label-free metrics only. Pool {split['n_pool']} cells, test "
            f"{split['n_test']} cells. Seeds: {params['seeds']}.</p><p>{distances}"
        )
        recall = ""
    else:
        unscored = split["test_labels_not_scored"]
        unscored_text = (
            ", ".join(f"{escape(k)} ({v})" for k, v in unscored.items()) if unscored else "none"
        )
        autoencoder = (
            f" Autoencoder: {escape(proxies['autoencoder'])}." if proxies.get("autoencoder") else ""
        )
        about = f"""<p>Label <b>{escape(split["label"])}</b>. Pool {split["n_pool"]} cells, test
{split["n_test"]} cells ({split["n_test_scored"]} scored). Test labels not scored (no pool cell
has them): {unscored_text}. Rare labels (under {split["rare_fraction"]:.0%} of the pool):
{escape(", ".join(split["rare_labels"])) or "none"}. Seeds: {params["seeds"]}.</p>
<p>Supervised: {escape(proxies["supervised"])} on {escape(proxies["features"])}.
Representation: {escape(proxies["representation"])}.{autoencoder} {distances}"""
        recall = f"<h2>Recall per label (mean over seeds)</h2>{_recall_tables(part, policies)}"
    return f"""<h1>Held out: {escape(holdout["column"])} = {escape(holdout["value"])}</h1>
{about}
Intervals are 95 % t-intervals over seeds; differences from random are paired by seed.</p>
<h2>Learning curves</h2>
{_legend(policies)}
{charts}
<h2>Summary</h2>
{_summary_table(part["summary"], metrics)}
{recall}"""


def render(payload: Mapping[str, Any]) -> str:
    """The whole page for a ``bench.json`` payload."""
    params = payload["parameters"]
    metrics: list[str] = list(payload.get("metrics", METRICS))
    if "holdouts" in payload:
        skipped = "".join(
            f"<li>{escape(s['value'])} ({s['n_cells']} cells): {escape(s['reason'])}</li>"
            for s in payload["skipped_holdouts"]
        )
        body = (
            f"<h1>Every value held out in turn: {escape(params['holdout'])}</h1>"
            "<h2>Against random, across holdouts: won/tied/lost</h2>"
            "<p>One verdict per holdout (per holdout and budget on the <b>all</b> rows): won or "
            "lost where the 95 % interval of the paired difference excludes 0.</p>"
            + _tally_table(payload["across_holdouts"], metrics)
            + (f"<p>Skipped:</p><ul>{skipped}</ul>" if skipped else "")
            + "".join(_section(part, params, metrics) for part in payload["holdouts"])
        )
    else:
        body = _section(payload, params, metrics)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>scurate bench: {escape(params["holdout"])}</title>
<style>{CSS}
.chart {{ display: inline-block; margin: 4px; vertical-align: top; }}
.won {{ color: #1a7f37; font-weight: bold; }} .lost {{ color: #b42318; font-weight: bold; }}
.tied {{ color: #666; }} .legend {{ font-size: 13px; }}
</style></head><body><main>
{body}
</main></body></html>
"""

"""bench.html: the learning curves (every metric against the budget, one line per policy, the
whole pool as a dashed line) and the recall per label, in one self-contained page (inline SVG,
no script, no network); with ``--holdout COL=*``, the wins/ties/losses against random across
the holdouts first, then one such section per holdout."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from scurate._bench.proxies import AUTOENCODER_METRIC, LOWER_IS_BETTER, METRICS

COLORS = ("#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
WIDTH, HEIGHT = 430, 270
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 44

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
    points = [(r["policy"], r["n_selected"], r[metric]) for r in summary if r[metric] is not None]
    if not points:
        return f"<p>{escape(TITLES[metric])}: no value (no rare label in the test set?)</p>"
    xs = sorted({p[1] for p in points})
    ys: list[float] = []
    for _, _, m in points:
        ys += [v for v in (m["mean"], m["ci_low"], m["ci_high"]) if v is not None]
    if full is not None:
        ys.append(full)
    bounded = metric not in LOWER_IS_BETTER  # scores in [0, 1]: intervals drawn clipped
    if bounded:
        ys = [min(max(v, 0.0), 1.0) for v in ys]
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.05, 0.01)
    lo, hi = lo - pad, hi + pad
    if bounded:
        lo, hi = max(lo, 0.0), min(hi, 1.0 + pad / 2)
    log_x = len(xs) > 1 and xs[-1] / xs[0] > 3
    tx = (lambda v: math.log(v)) if log_x else float
    x0, x1 = tx(xs[0]), tx(xs[-1])
    span = (x1 - x0) or 1.0
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(v: float) -> float:
        return LEFT + (tx(v) - x0) / span * w if len(xs) > 1 else LEFT + w / 2

    def py(v: float) -> float:
        if bounded:
            v = min(max(v, 0.0), 1.0)
        return TOP + (hi - v) / (hi - lo) * h

    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">',
        f'<text x="{LEFT}" y="16" font-size="13">{escape(TITLES[metric])}'
        f"{' (lower is better)' if metric in LOWER_IS_BETTER else ''}</text>",
        f'<line x1="{LEFT}" y1="{TOP + h}" x2="{LEFT + w}" y2="{TOP + h}" stroke="#333"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + h}" stroke="#333"/>',
    ]
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(
            f'<text x="{LEFT - 4}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>'
            f'<line x1="{LEFT}" y1="{py(v):.1f}" x2="{LEFT + w}" y2="{py(v):.1f}" '
            'stroke="#eee"/>'
        )
    for x in xs:
        parts.append(f'<text x="{px(x):.1f}" y="{TOP + h + 14}" text-anchor="middle">{x}</text>')
    parts.append(
        f'<text x="{LEFT + w / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"cells selected{' (log scale)' if log_x else ''}</text>"
    )
    if full is not None:
        parts.append(
            f'<line x1="{LEFT}" y1="{py(full):.1f}" x2="{LEFT + w}" y2="{py(full):.1f}" '
            'stroke="#000" stroke-dasharray="5,4"><title>whole pool: '
            f"{full:.4f}</title></line>"
        )
    for name in policies:
        mine = sorted((x, m) for p, x, m in points if p == name)
        if not mine:
            continue
        color = _color(policies, name)
        path = " ".join(f"{px(x):.1f},{py(m['mean']):.1f}" for x, m in mine)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, m in mine:
            if m["ci_low"] is not None:
                parts.append(
                    f'<line x1="{px(x):.1f}" y1="{py(m["ci_low"]):.1f}" x2="{px(x):.1f}" '
                    f'y2="{py(m["ci_high"]):.1f}" stroke="{color}"/>'
                )
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(m["mean"]):.1f}" r="3" fill="{color}">'
                f"<title>{escape(name)} at {x}: {m['mean']:.4f}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


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
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; font-size: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.chart {{ display: inline-block; margin: 4px; }}
.won {{ color: #1a7f37; font-weight: bold; }} .lost {{ color: #b42318; font-weight: bold; }}
.tied {{ color: #666; }} .legend {{ font-size: 13px; }}
</style></head><body>
{body}
</body></html>
"""

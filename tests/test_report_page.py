"""report.html: the page of the embedded example drawn in headless Chromium (every section's
figure, no script error, no request), the "adds" table, and `scurate report`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scurate import build_index, score_to_dir, select_to_dir
from scurate._data.example import example_sources
from scurate._engine.pages import render_report, write_report
from scurate._report import adds_table
from scurate.cli import app
from typer.testing import CliRunner

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="headless Chromium is absent (apt-get install chromium; .ci/run installs it)",
)
# sections that draw a figure on a select run of the example with its embedding
DRAWN = ("run", "datasets", "coverage", "radius", "overlap", "scores", "map")
# the probe: script errors caught from the first line on; on load, every section's figures
# measured, every resource the page requested listed, and all of it written into the DOM
PROBE_HEAD = (
    "<script>window.__errors=[];addEventListener('error',e=>__errors.push(String(e.message)));"
    "</script>"
)
PROBE_LOAD = """<script>addEventListener('load',()=>{const out={errors:__errors,sections:{},
urls:[]};for(const s of document.querySelectorAll('section')){out.sections[s.id]=[...s
.querySelectorAll('svg[data-figure]')].map(f=>{const r=f.getBoundingClientRect();
return [f.dataset.figure,r.width,r.height,f.querySelectorAll('path,use,image,text').length]})}
out.requests=performance.getEntriesByType('resource').map(e=>e.name);
for(const el of document.querySelectorAll('*'))for(const a of el.attributes)
if(/(^|:)(src|href)$/.test(a.name)&&!/^(#|data:)/.test(a.value))out.urls.push(a.value);
const p=document.createElement('pre');p.id='probe';p.textContent=JSON.stringify(out);
document.body.appendChild(p)})</script>"""


def chromium_probe(page: Path, tmp: Path) -> dict[str, Any]:
    """Open ``page`` (with the probe added) in headless Chromium behind a proxy that leads
    nowhere, and return what the probe saw."""
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html  # the page itself runs no script
    probed = tmp / "probed.html"
    probed.write_text(
        html.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_LOAD + "</body>")
    )
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",
            "--window-size=1280,900",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    from html import unescape

    result: dict[str, Any] = json.loads(unescape(found.group(1)))
    return result


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("example")
    select_to_dir(example_sources(), 200, out=root / "out", work_dir=root / "work", seed=0)
    return root / "out"


def test_adds_table_names_the_rare_cells_and_the_copies(example_run: Path) -> None:
    rows = {
        r["dataset_id"]: r for r in adds_table(pl.read_parquet(example_run / "manifest.parquet"))
    }
    assert list(rows) == ["lab_a", "lab_b", "lab_c", "lab_d"]
    pdc = [v for v in rows["lab_d"]["only_here"]["cell_type"] if "plasmacytoid" in v["value"]]
    assert pdc and pdc[0]["cells"] == 8, rows["lab_d"]["only_here"]
    assert "plasmacytoid" in rows["lab_d"]["adds"]
    for other in ("lab_a", "lab_b", "lab_c"):
        found = [v["value"] for v in rows[other]["only_here"]["cell_type"]]
        assert not any("plasmacytoid" in v for v in found), found
    assert list(rows["lab_c"]["copies_of"]) == ["lab_a"]
    assert sum(rows["lab_c"]["copies_of"]["lab_a"].values()) == 60
    assert rows["lab_c"]["exact_copies"] + rows["lab_c"]["near_copies"] >= 60
    assert "60 copies of lab_a add nothing" in rows["lab_c"]["adds"]
    assert rows["lab_a"]["copies_of"] == {} and rows["lab_a"]["exact_copies"] == 0
    # the example's run filters by QC (its reason column says so); no embedding was given
    assert all(isinstance(r["qc_filtered"], int) for r in rows.values())
    assert all(r["far_basis"] is None for r in rows.values())
    json.dumps(list(rows.values()))  # JSON-able as it is


def test_adds_table_with_reasons_and_embedding(example_run: Path) -> None:
    manifest = pl.read_parquet(example_run / "manifest.parquet")
    reason = np.where(manifest["selected"].to_numpy(), "selected", "past_budget").astype(object)
    reason[np.flatnonzero(manifest["exact_dup_of"].is_not_null().to_numpy())] = "exact_copy"
    reason[:5] = "qc"  # the first five cells of lab_a
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(manifest.height, 8)).astype(np.float32)
    embedding[manifest["dataset_id"].to_numpy() == "lab_d"] += 20  # far from everything
    rows = adds_table(manifest.with_columns(pl.Series("reason", reason)), embedding)
    by = {r["dataset_id"]: r for r in rows}
    assert by["lab_a"]["qc_filtered"] == 5 and by["lab_b"]["qc_filtered"] == 0
    in_c = manifest["dataset_id"].to_numpy() == "lab_c"
    assert by["lab_c"]["exact_copies"] == int((in_c & (reason == "exact_copy")).sum()) >= 59
    assert by["lab_c"]["near_copies"] == 0  # the reason column, not the scores, says so
    assert by["lab_d"]["far_basis"] == "nearest_other_dataset"
    assert by["lab_d"]["far_share"] == 1.0
    assert by["lab_a"]["far_share"] < 0.7
    gain = by["lab_d"]["coverage_gain"]
    assert gain is not None and gain["relative"] > 0


def test_nearest_outside_matches_brute_force() -> None:
    from scurate._report.adds import K_OUTSIDE, _nearest_outside

    rng = np.random.default_rng(3)
    base = rng.normal(size=(600, 4)).astype(np.float32)
    labels = rng.choice(np.array(["a", "b", "c"]), 600)
    base[labels == "c"] += 30  # c's queries find only c among their nearest: the fallback
    queries = np.concatenate([base[:50], rng.normal(size=(50, 4)).astype(np.float32)])
    found = _nearest_outside(base, labels, queries, ["a", "b", "c", "none"])
    full = np.sqrt(((queries[:, None, :] - base[None, :, :]) ** 2).sum(-1))
    for d in ("a", "b", "c", "none"):
        expected = np.where(labels[None, :] != d, full, np.inf).min(axis=1)
        np.testing.assert_allclose(found[d], expected, rtol=1e-4, atol=1e-4)
    assert (labels[:50] == "c").sum() > 0 and (labels == "c").sum() > K_OUTSIDE


@needs_chromium
def test_page_draws_every_section_offline(example_run: Path, tmp_path: Path) -> None:
    page = write_report(example_run)
    seen = chromium_probe(page, tmp_path)
    assert seen["errors"] == [] and seen["requests"] == [] and seen["urls"] == [], seen
    for section in DRAWN:
        figs = seen["sections"][section]
        assert figs, f"{section}: no figure"
        for name, width, height, marks in figs:
            assert width > 50 and height > 50 and marks > 3, (section, name, width, height)
    assert seen["sections"]["adds"] == []  # a table, coloured by value
    assert len(seen["sections"]["coverage"]) >= 3  # tissue or cell type, assay, donor
    html = page.read_text()
    assert "plasmacytoid dendritic cell" in html and "background:#" in html
    assert not re.search(r"""(src|href)=["']https?:""", html)


def test_page_without_embedding_says_why(tmp_path: Path) -> None:
    out = tmp_path / "out"
    select_to_dir(example_sources(), 20, out=out, policy="random", seed=1)
    html = render_report(out)
    tables = json.loads((out / "report.json").read_text())["coverage"]
    missing = [
        m["value"] for s in ("cell_type", "donor_id") for m in tables[s]["missing_from_selection"]
    ]
    assert missing  # 20 random cells miss a stratum: highlighted in the bars and listed
    coverage = re.search(r'<section id="coverage">(.*?)</section>', html, re.S)
    assert coverage and "#d62728" in coverage.group(1)
    assert all(m in coverage.group(1) for m in missing)
    section = re.search(r'<section id="map">(.*?)</section>', html, re.S)
    assert section and "No embedding" in section.group(1)
    assert "<figcaption" not in section.group(1) and "<svg" not in section.group(1)
    radius = re.search(r'<section id="radius">(.*?)</section>', html, re.S)
    assert radius and ("<svg" in radius.group(1)) != ('class="why"' in radius.group(1))
    with_map = render_report(out, embedding=np.random.default_rng(0).normal(size=(2400, 5)))
    assert 'data-figure="map"' in with_map
    with pytest.raises(Exception, match="embedding: 3 rows"):
        render_report(out, embedding=np.zeros((3, 5)))


def test_reference_run_and_reason_column(tmp_path: Path) -> None:
    lab_a, *others = example_sources()
    build_index([lab_a], out=tmp_path / "ref.idx")
    out = tmp_path / "out"
    select_to_dir(others, 100, out=out, reference=[tmp_path / "ref.idx"], seed=0)
    rows = {r["dataset_id"]: r for r in adds_table(pl.read_parquet(out / "manifest.parquet"))}
    assert {r["far_basis"] for r in rows.values()} == {"novelty"}
    manifest = pl.read_parquet(out / "manifest.parquet")
    novelty = manifest["novelty"].to_numpy()
    for d, row in rows.items():  # the share beyond the pool's median novelty
        mine = novelty[manifest["dataset_id"].to_numpy() == d]
        assert row["far_share"] == round(float(np.mean(mine > np.median(novelty))), 4)
    html = render_report(out)
    assert 'data-figure="hist-novelty"' in html and "far from the reference" in html
    assert "Why each cell is in or out" in html  # the engine writes the reason column
    # a manifest with the reason and QC columns (as the engine will write them)
    reason = np.where(manifest["selected"].to_numpy(), "selected", "past_budget").astype(object)
    reason[:7] = "qc"
    manifest.with_columns(pl.Series("reason", reason)).write_parquet(out / "manifest.parquet")
    record = json.loads((out / "report.json").read_text())
    del record["written"]  # the manifest changed on purpose
    (out / "report.json").write_text(json.dumps(record))
    html = render_report(out)
    assert "Why each cell is in or out" in html and "QC filtered" in html
    table = re.search(r'<section id="datasets">(.*?)</section>', html, re.S)
    assert table and '<td class="num">7</td>' in table.group(1)


def test_score_run_page(tmp_path: Path) -> None:
    out = tmp_path / "scores"
    score_to_dir(example_sources(), out=out)
    html = render_report(out)
    assert "scurate scores report: 2,400 cells" in html
    assert "a score run selects nothing" in html.lower()
    assert 'data-figure="overlap"' in html and 'data-figure="hist-density"' in html


runner = CliRunner()


def test_cli_report_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("scurate: error: ")
    assert "report.json" in result.stderr
    assert not (tmp_path / "report.html").exists()


def test_cli_report_rebuilds_the_page(example_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(example_run, out)
    (out / "report.html").write_text("stale")
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "stale" not in html
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]
    record = json.loads((out / "report.json").read_text())
    record["adds"] = adds_table(pl.read_parquet(out / "manifest.parquet"))
    record["adds"][0]["adds"] = "as the run recorded it"
    (out / "report.json").write_text(json.dumps(record))
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    assert "as the run recorded it" in (out / "report.html").read_text()  # not recomputed
    (out / "manifest.parquet").write_bytes(b"not parquet")
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 1 and "does not match" in result.stderr

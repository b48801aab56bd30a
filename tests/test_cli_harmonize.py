"""scurate harmonize through the CLI, and select's manifest and report with harmonized metadata."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import polars as pl
import pytest
import scurate
from scurate._data.manifest import read_manifest
from scurate._engine.coverage import rollup, strata_column
from scurate.cli import app
from typer.testing import CliRunner

from conftest import make_adata
from plugin_helpers import BY_CELL_TYPE, install_plugin

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})  # rich: no wrap
    return result.exit_code, result.stdout, result.stderr


def two_pancreas_labs(tmp_path: Path, programs: np.ndarray) -> list[Path]:
    """Two labs that wrote their labels differently: lab_p's 'celltype' in one spelling,
    lab_q's 'assigned_cluster' in another, and a cell type only lab_q has."""
    rng = np.random.default_rng(1)
    names_p = ["beta", "alpha", "ductal", "B cells", "immune_other"]
    names_q = ["Beta", "Alpha", "Ductal", "B_cell", "schwann"]
    p = make_adata(rng, programs, names_p, [120, 80, 60, 10, 6], prefix="p_")
    q = make_adata(rng, programs, names_q, [100, 70, 50, 8, 5], prefix="q_")
    p.obs = p.obs.rename(columns={"cell_type": "celltype"})
    q.obs = q.obs.rename(columns={"cell_type": "assigned_cluster"})
    q.obs["mouse"] = pd.Categorical(np.where(np.arange(q.n_obs) % 2, "m1", "m2"))
    paths = [tmp_path / "lab_p.h5ad", tmp_path / "lab_q.h5ad"]
    p.write_h5ad(paths[0])
    q.write_h5ad(paths[1])
    return paths


def write_map(tmp_path: Path) -> Path:
    path = tmp_path / "map.toml"
    path.write_text(
        '[[dataset]]\nmatch = "lab_*"\nset = { tissue = "pancreas", organism = "mouse" }\n\n'
        '[[dataset]]\nmatch = "lab_q.h5ad"\ncolumns = { donor_id = "mouse" }\n'
    )
    return path


def test_harmonize_prints_per_dataset_and_field(tmp_path: Path, programs: np.ndarray) -> None:
    paths = two_pancreas_labs(tmp_path, programs)
    out = tmp_path / "obs.parquet"
    code, stdout, err = run("harmonize", *paths, "--metadata-map", write_map(tmp_path), "-o", out)
    assert code == 0, err
    assert "lab_p (276 cells)" in stdout and "lab_q (233 cells)" in stdout
    assert "celltype (276)" in stdout and "assigned_cluster (233)" in stdout
    assert "immune_other (6)" in stdout, "the unmapped value is listed"
    obs = pl.read_parquet(out)
    assert obs.height == 509 and obs["cell_id"][0] == "lab_p/p_00000"
    by_value = dict(obs.select("cell_type", "cell_type_ontology_term_id").unique().iter_rows())
    assert by_value["pancreatic A cell"] == "CL:0000171", "alpha and Alpha, the pancreatic term"
    assert by_value["type B pancreatic cell"] == "CL:0000169"
    assert by_value["B cell"] == "CL:0000236" and by_value["Schwann cell"] == "CL:0002573"
    assert by_value["immune_other"] is None
    assert set(obs.filter(pl.col("dataset_id") == "lab_q")["donor_id"]) == {"m1", "m2"}


def test_harmonize_json(tmp_path: Path, programs: np.ndarray) -> None:
    paths = two_pancreas_labs(tmp_path, programs)
    code, stdout, err = run("harmonize", *paths, "--set", "tissue=pancreas", "--json")
    assert code == 0, err
    report = json.loads(stdout)
    lab_p = report["datasets"][0]["fields"]["cell_type"]
    assert lab_p["from"] == [
        {"harmonizer": "columns", "kind": "column", "name": "celltype", "cells": 276}
    ]
    assert lab_p["cells_mapped"] == 270 and lab_p["fraction_mapped"] == round(270 / 276, 4)
    assert [u["value"] for u in lab_p["unmapped"]] == ["immune_other"]
    mapped = {m["value"]: m["term_id"] for m in lab_p["mapped"]}
    assert mapped["alpha"] == "CL:0000171"
    assert report["fields"]["tissue"]["fraction_mapped"] == 1.0


def test_harmonize_errors_are_one_line(tmp_path: Path, programs: np.ndarray) -> None:
    paths = two_pancreas_labs(tmp_path, programs)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[dataset]]\nmatch = "lab_p"\ncolumns = { cell_type = "annotation" }\n')
    for args, needle in [
        (["--metadata-map", bad], f"{bad}: column 'annotation' (for cell_type) is not in the obs"),
        (["--set", "tissue_ontology_term_id=CL:0000003"], "is deprecated in CL"),
        (["--set", "species=mouse"], "--set: unknown field 'species'"),
    ]:
        code, _, err = run("harmonize", *paths, *args)
        assert code == 1 and err.count("\n") == 1 and needle in err, err
    code, _, err = run("harmonize")
    assert code == 1 and "no sources" in err
    out = tmp_path / "out"
    code, _, err = run("select", *paths, "-b", "10", "-o", out, "--metadata-map", bad)
    assert code == 1 and err.count("\n") == 1 and "column 'annotation'" in err
    assert not (out / "manifest.parquet").exists()
    for target, needle in [
        (tmp_path / "nowhere" / "obs.parquet", "cannot write (no folder "),
        (tmp_path, "is a folder; give a .parquet file name"),
    ]:
        code, _, err = run("harmonize", *paths, "-o", target)
        assert code == 1 and err.count("\n") == 1 and f"--out {target}: " in err and needle in err


def test_select_writes_harmonized_columns_and_coverage(
    tmp_path: Path, programs: np.ndarray
) -> None:
    paths = two_pancreas_labs(tmp_path, programs)
    out = tmp_path / "out"
    code, _, err = run(
        "select", *paths, "-b", "40", "-o", out, "--metadata-map", write_map(tmp_path)
    )
    assert code == 0, err
    manifest = read_manifest(out / "manifest.parquet")
    assert manifest["cell_type"].null_count() == 0
    assert manifest["tissue_ontology_term_id"].unique().to_list() == ["UBERON:0001264"]
    assert manifest["organism_ontology_term_id"].unique().to_list() == ["NCBITaxon:10090"]
    report = json.loads((out / "report.json").read_text())
    cell_types = report["coverage"]["cell_type"]
    pool = {r["value"]: r["pool"] for r in cell_types["strata"]}
    assert pool["pancreatic A cell"] == 150 and pool["Schwann cell"] == 5
    assert cell_types["n_strata_pool"] == 6
    selected = {r["value"]: r["selected"] for r in cell_types["strata"]}
    missing = {m["value"] for m in cell_types["missing_from_selection"]}
    assert missing == {v for v, n in selected.items() if n == 0 and v is not None}
    assert sum(selected.values()) == 40
    assert "cell_type@class" in report["coverage"] and "tissue@general" in report["coverage"]
    assert report["harmonization"]["fields"]["cell_type"]["cells_mapped"] == 509 - 6


def test_rollups_and_strata(tmp_path: Path, programs: np.ndarray) -> None:
    assert rollup("cell_type", "CL:0000236", "subclass") == "CL:0000236"  # B cell is listed
    assert rollup("cell_type", "CL:0000236", "class") == "CL:0000988"  # hematopoietic cell
    assert rollup("tissue", "UBERON:0001264", "general") == "UBERON:0001264"
    paths = two_pancreas_labs(tmp_path, programs)
    selection = scurate.select(paths, 30, set_fields=["tissue=pancreas"])
    coarse = strata_column(selection.manifest, "cell_type@class")
    fine = strata_column(selection.manifest, "cell_type")
    assert coarse.n_unique() < fine.n_unique()
    assert set(coarse.drop_nulls()) >= {"hematopoietic cell", "neural cell"}


def test_stored_labels_do_not_need_x(tmp_path: Path) -> None:
    adata = ad.AnnData(np.zeros((4, 2), dtype=np.float32))
    adata.obs["cell_type_ontology_term_id"] = ["CL:0000236"] * 4
    adata.obs["sex"] = ["F", "F", "M", "unknown"]
    adata.write_h5ad(tmp_path / "c.h5ad")
    result = scurate.harmonize([tmp_path / "c.h5ad"])
    assert result.obs["cell_type"].to_list() == ["B cell"] * 4
    assert result.obs["sex_ontology_term_id"].to_list() == [
        "PATO:0000383",
        "PATO:0000383",
        "PATO:0000384",
        None,
    ]


def test_a_policy_sees_the_harmonized_cell_types(
    tmp_path: Path, programs: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "by-cell-type", BY_CELL_TYPE)
    paths = two_pancreas_labs(tmp_path, programs)
    selection = scurate.select(paths, 6, policy="by-cell-type", set_fields=["tissue=pancreas"])
    assert selection.report["policy_info"]["seen_cell_types"] == [
        "B cell",
        "Schwann cell",
        "immune_other",
        "pancreatic A cell",
        "pancreatic ductal cell",
        "type B pancreatic cell",
    ], "lab_p's 'alpha' and lab_q's 'Alpha' are one stratum before the policy runs"
    coverage = selection.report["coverage"]["cell_type"]
    assert coverage["n_strata_selected"] == 6 and coverage["missing_from_selection"] == []


def test_example_corpus_label_columns_are_all_found() -> None:
    """Each example lab keeps its labels in another column (cell_type, celltype, CellType,
    annotation); all of them map to the same CL terms, the rare pDCs of lab_d included."""
    from scurate._data.example import example_sources

    result = scurate.harmonize(example_sources())
    sources = {
        d["dataset_id"]: [s["name"] for s in d["fields"]["cell_type"]["from"]]
        for d in result.report["datasets"]
    }
    assert sources == {
        "lab_a": ["cell_type"],
        "lab_b": ["celltype"],
        "lab_c": ["CellType"],
        "lab_d": ["annotation"],
    }
    assert result.report["fields"]["cell_type"]["fraction_mapped"] == 1.0
    terms = dict(result.obs.select("cell_type", "cell_type_ontology_term_id").unique().iter_rows())
    assert len(terms) == 8 and terms["plasmacytoid dendritic cell"] == "CL:0000784"
    assert terms["natural killer cell"] == "CL:0000623", "'NK cell' is a CL synonym"

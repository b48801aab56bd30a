"""scurate select and scurate plugins through the CLI: outputs, JSON, and one line per error."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import polars as pl
import pytest
from scurate._data.manifest import MANIFEST_SCHEMA, read_manifest
from scurate.cli import app
from typer.testing import CliRunner

from plugin_helpers import BAD_OUTPUT, BROKEN_IMPORT, VANISHING, install_plugin

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def fails_in_one_line(args: list[str | Path], *needles: str) -> str:
    code, _, err = run(*args)
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("scurate: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_select_writes_manifest_and_report(two_labs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = run("select", *two_labs, "-b", "60", "-o", out)
    assert code == 0
    assert "60 of 1598 cells selected" in stdout and "lab_b" in stdout
    manifest = read_manifest(out / "manifest.parquet")
    assert manifest.schema == MANIFEST_SCHEMA and manifest.height == 1598
    chosen = manifest.filter(pl.col("selected")).sort("selection_rank")
    assert chosen["selection_rank"].to_list() == list(range(60))
    assert set(chosen["policy"]) == {"facility-density"}  # the default policy
    assert manifest.filter(~pl.col("selected"))["selection_rank"].null_count() == 1538
    assert manifest["cell_type"].null_count() == 0, "the obs column cell_type, harmonized"
    t_cells = manifest.filter(pl.col("cell_type_ontology_term_id") == "CL:0000084")
    assert set(t_cells["cell_type"]) == {"T cell"} and t_cells.height == 550
    assert set(manifest.filter(pl.col("cell_type_ontology_term_id").is_null())["cell_type"]) == {
        "Mono"
    }, "'Mono' matches no CL term exactly and stays text"
    assert manifest["disease"].null_count() == 1598, "no column says it: typed nulls"
    report = json.loads((out / "report.json").read_text())
    assert {d["dataset_id"]: (d["pool"], d["selected"]) for d in report["datasets"]} == {
        "lab_a": (898, int(chosen["dataset_id"].eq("lab_a").sum())),
        "lab_b": (700, int(chosen["dataset_id"].eq("lab_b").sum())),
    }
    assert report["parameters"]["budget"] == 60 and report["parameters"]["seed"] == 0
    assert report["embedding"]["n_genes_shared"] == 270
    assert {"open", "embed", "select", "write"} <= set(report["timings_s"])
    assert report["versions"]["scurate"] and report["versions"]["numpy"]
    assert report["covering_radius"] > 0
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.parquet",
        "report.html",
        "report.json",
    ]


def test_same_seed_same_bytes(two_labs: list[Path], tmp_path: Path) -> None:
    for name in ("one", "two"):
        assert run("select", *two_labs, "-b", "25", "-o", tmp_path / name, "--seed", "9")[0] == 0
    one = (tmp_path / "one" / "manifest.parquet").read_bytes()
    assert one == (tmp_path / "two" / "manifest.parquet").read_bytes()


def test_json_and_stored_embedding(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a", "b"):
        adata = ad.AnnData(np.zeros((100, 2), dtype=np.float32))
        adata.obs_names = [f"{name}{i}" for i in range(100)]
        adata.obsm["X_scVI"] = rng.normal(size=(100, 10)).astype(np.float32)
        adata.write_h5ad(tmp_path / f"{name}.h5ad")
        paths.append(tmp_path / f"{name}.h5ad")
    code, stdout, _ = run(
        "select",
        *paths,
        "-b",
        "10",
        "-o",
        tmp_path / "out",
        "--obsm-key",
        "X_scVI",
        "--policy",
        "random",
        "--json",
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["n_selected"] == 10 and summary["embedding"]["kind"] == "obsm"
    assert summary["parameters"]["policy"] == "random"


def test_plugins_lists_first_party_and_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "broken", BROKEN_IMPORT)
    code, stdout, _ = run("plugins", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(stdout)}
    assert rows["policies"]["provides"] == {
        "policies": [
            "kcenter",
            "random",
            "facility",
            "facility-kcenter",
            "kcenter-density",
            "cluster-balance",
            "facility-density",
            "sketch",
            "reweight",
        ]
    }
    assert rows["broken"]["ok"] is False and "ModuleNotFoundError" in rows["broken"]["error"]


# --- bad input: one line naming the file, column or option, exit 1, no output that looks done


def test_missing_file(tmp_path: Path) -> None:
    fails_in_one_line(
        ["select", tmp_path / "gone.h5ad", "-b", "5", "-o", tmp_path / "o"],
        "gone.h5ad: no such file or folder",
    )


def test_truncated_file(two_labs: list[Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.h5ad"
    cut.write_bytes(two_labs[0].read_bytes()[:5000])
    fails_in_one_line(["select", cut, "-b", "5", "-o", tmp_path / "o"], "cut.h5ad: cannot read")
    assert not (tmp_path / "o").exists()


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.h5ad").touch()
    fails_in_one_line(
        ["select", tmp_path / "empty.h5ad", "-b", "5", "-o", tmp_path / "o"],
        "empty.h5ad: the file is empty",
    )


def test_budget_above_pool(two_labs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    fails_in_one_line(
        ["select", *two_labs, "-b", "9999999", "-o", out],
        "--budget 9999999 is more than the 1598 cells",
    )
    assert not (out / "manifest.parquet").exists()


def test_unknown_policy(two_labs: list[Path], tmp_path: Path) -> None:
    fails_in_one_line(
        ["select", *two_labs, "-b", "5", "-o", tmp_path / "o", "--policy", "best"],
        "--policy best is not a registered policy "
        "(available: cluster-balance, facility, facility-density, facility-kcenter, kcenter, "
        "kcenter-density, random, reweight, sketch)",
    )


def test_broken_plugin_is_named(
    monkeypatch: pytest.MonkeyPatch, two_labs: list[Path], tmp_path: Path
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "broken", BROKEN_IMPORT)
    fails_in_one_line(
        ["select", *two_labs, "-b", "5", "-o", tmp_path / "o", "--policy", "broken"],
        "--policy broken: plugin 'broken' failed (ModuleNotFoundError",
    )
    code, _, _ = run("select", *two_labs, "-b", "5", "-o", tmp_path / "o2", "--policy", "random")
    assert code == 0, "the other plugins keep working"


def test_policy_returning_repeats(
    monkeypatch: pytest.MonkeyPatch, two_labs: list[Path], tmp_path: Path
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "sloppy", BAD_OUTPUT)
    for policy, needle in [
        ("repeats", "returned the same row more than once"),
        ("short", "returned 4 rows for a budget of 5"),
        ("raises", "failed: ZeroDivisionError"),
    ]:
        fails_in_one_line(
            ["select", *two_labs, "-b", "5", "-o", tmp_path / "o", "--policy", policy],
            f"policy '{policy}' (plugin 'sloppy') {needle}",
        )


def test_source_removed_midway(
    monkeypatch: pytest.MonkeyPatch, two_labs: list[Path], tmp_path: Path
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "vanishing", VANISHING)
    moving = tmp_path / "lab_b.h5vanish"
    moving.write_bytes(two_labs[1].read_bytes())
    out = tmp_path / "o"
    fails_in_one_line(
        ["select", two_labs[0], moving, "-b", "5", "-o", out],
        "lab_b.h5vanish: no longer exists (removed or moved while scurate was reading X)",
    )
    assert not moving.exists() and not out.exists()


def test_missing_obsm_key(two_labs: list[Path], tmp_path: Path) -> None:
    fails_in_one_line(
        ["select", *two_labs, "-b", "5", "-o", tmp_path / "o", "--obsm-key", "X_scVI"],
        "lab_a.h5ad: obsm has no 'X_scVI'",
    )


def test_embedding_widths_differ(tmp_path: Path) -> None:
    for name, width in (("a", 10), ("b", 12)):
        adata = ad.AnnData(np.zeros((20, 2), dtype=np.float32))
        adata.obsm["X_pca"] = np.ones((20, width), dtype=np.float32)
        adata.write_h5ad(tmp_path / f"{name}.h5ad")
    fails_in_one_line(
        [
            "select",
            tmp_path / "a.h5ad",
            tmp_path / "b.h5ad",
            "-b",
            "5",
            "-o",
            tmp_path / "o",
            "--obsm-key",
            "X_pca",
        ],
        "b.h5ad: obsm['X_pca'] has 12 columns but",
        "has 10",
    )


def test_nan_rows(tmp_path: Path) -> None:
    adata = ad.AnnData(np.zeros((20, 2), dtype=np.float32))
    adata.obsm["X_pca"] = np.ones((20, 4), dtype=np.float32)
    adata.obsm["X_pca"][7, 1] = np.nan
    adata.write_h5ad(tmp_path / "a.h5ad")
    fails_in_one_line(
        ["select", tmp_path / "a.h5ad", "-b", "5", "-o", tmp_path / "o", "--obsm-key", "X_pca"],
        "a.h5ad: obsm['X_pca'] row 7 (cell '7') has NaN or inf",
    )


def test_duplicated_obs_names(two_labs: list[Path], tmp_path: Path) -> None:
    import h5py

    dup = tmp_path / "dup.h5ad"
    dup.write_bytes(two_labs[0].read_bytes())
    with h5py.File(dup, "r+") as f:  # repeat one barcode in place
        names = f["obs"]["_index"]
        names[3] = names[2]
    fails_in_one_line(
        ["select", dup, "-b", "5", "-o", tmp_path / "o"],
        "dup.h5ad: obs names are not unique ('a_00002' appears 2 times)",
    )


def test_no_shared_genes(tmp_path: Path) -> None:
    import pandas as pd

    ad.AnnData(
        np.ones((5, 2), dtype=np.float32),
        var=pd.DataFrame(index=["ENSG00000000003", "ENSG00000000005"]),
    ).write_h5ad(tmp_path / "human.h5ad")
    ad.AnnData(
        np.ones((5, 2), dtype=np.float32), var=pd.DataFrame(index=["Gcg", "Ins1"])
    ).write_h5ad(tmp_path / "mouse.h5ad")
    fails_in_one_line(
        [
            "select",
            tmp_path / "human.h5ad",
            tmp_path / "mouse.h5ad",
            "-b",
            "3",
            "-o",
            tmp_path / "o",
        ],
        "sources share no genes, even through scurate's gene tables: human.h5ad (human) name "
        "genes by Ensembl id only and mouse.h5ad (mouse) by symbol only",
    )


def test_no_sources_and_bad_param(two_labs: list[Path], tmp_path: Path) -> None:
    fails_in_one_line(
        ["select", "-b", "3", "-o", tmp_path / "o"],
        "no sources: give .h5ad files, .zarr stores, SOMA experiments or folders, or --example",
    )
    fails_in_one_line(
        ["select", *two_labs, "-b", "3", "-o", tmp_path / "o", "--param", "first"],
        "--param first: expected key=value",
    )


def test_out_is_a_file(two_labs: list[Path], tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    fails_in_one_line(
        ["select", *two_labs, "-b", "3", "-o", tmp_path / "taken"],
        "-o",
        "exists and is not a folder",
    )

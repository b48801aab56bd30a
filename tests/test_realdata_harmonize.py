"""Harmonization on the real datasets in ../shared/data (opt-in: pytest -m realdata)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import scurate
from scurate.cli import app
from typer.testing import CliRunner

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BARON = DATA / "baron_mouse_pancreas" / "baron_mouse_pancreas.h5ad"
CELLBENCH = DATA / "cellbench_lung_celllines" / "cellbench_lung_celllines.h5ad"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not BARON.exists() or not CELLBENCH.exists(), reason="no ../shared/data"),
]

BARON_CL = {
    "beta": "CL:0000169",
    "delta": "CL:0000173",
    "ductal": "CL:0002079",
    "endothelial": "CL:0000115",
    "macrophage": "CL:0000235",
    "schwann": "CL:0002573",
    "B_cell": "CL:0000236",
    "T_cell": "CL:0000084",
    "alpha": "CL:0000171",  # pancreatic A cell, not CL:0004117 the retinal alpha cell
}


def baron_cell_types(report: dict) -> dict:  # type: ignore[type-arg]
    (dataset,) = report["datasets"]
    return dataset["fields"]["cell_type"]  # type: ignore[no-any-return]


def test_cellbench_cell_line_found_across_inconsistent_columns() -> None:
    result = scurate.harmonize([CELLBENCH])
    (dataset,) = result.report["datasets"]
    cell_line = dataset["fields"]["cell_line"]
    assert cell_line["cells_with_value"] == 1408, "cell_line is NaN for 909 cells"
    assert [s["name"] for s in cell_line["from"]] == ["cell_line_demuxlet"]
    assert cell_line["notes"][0].startswith("columns 'cell_line_demuxlet' and 'cell_line'")
    assert dict(result.obs.group_by("cell_line").len().iter_rows()) == {
        "A-549": 328,
        "NCI-H1975": 327,
        "NCI-H2228": 285,
        "HCC827": 271,
        "NCI-H838": 197,
    }
    assert result.obs["cell_line_ontology_term_id"].null_count() == 0


@pytest.mark.parametrize("how", ["mapping file", "command line"])
def test_baron_cell_types_map_to_cl_with_the_pancreas(how: str, tmp_path: Path) -> None:
    if how == "mapping file":
        path = tmp_path / "map.toml"
        path.write_text(
            '[[dataset]]\nmatch = "baron*"\n'
            'columns = { cell_type = "assigned_cluster", donor_id = "source_file" }\n'
            'set = { tissue = "pancreas", organism = "mouse", assay = "inDrop" }\n'
        )
        result = scurate.harmonize([BARON], metadata_map=path)
    else:
        result = scurate.harmonize([BARON], set_fields=["tissue=pancreas"])
    fields = baron_cell_types(result.report)
    mapped = {m["value"]: m["term_id"] for m in fields["mapped"]}
    assert mapped == BARON_CL
    unmapped = {u["value"] for u in fields["unmapped"]}
    assert unmapped == {"immune_other", "gamma", "quiescent_stellate", "activated_stellate"}
    assert fields["cells_mapped"] == 1886 - 8 - 41 - 47 - 14


def test_baron_without_a_tissue_leaves_alpha_unmapped() -> None:
    fields = baron_cell_types(scurate.harmonize([BARON]).report)
    mapped = {m["value"]: m["term_id"] for m in fields["mapped"]}
    assert "alpha" not in mapped, "'alpha cell' alone names a retinal ganglion cell"
    assert mapped["B_cell"] == "CL:0000236" and mapped["endothelial"] == "CL:0000115"


def test_harmonize_cli_lists_both_datasets(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text('[[dataset]]\nmatch = "baron*"\nset = { tissue = "pancreas" }\n')
    result = CliRunner().invoke(
        app, ["harmonize", str(BARON), str(CELLBENCH), "--metadata-map", str(path), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [d["dataset_id"] for d in report["datasets"]] == [
        "baron_mouse_pancreas",
        "cellbench_lung_celllines",
    ]
    assert report["datasets"][1]["fields"]["tissue"]["cells_with_value"] == 0

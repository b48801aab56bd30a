"""scurate export-soma-ids: a selection of a real TileDB-SOMA experiment (written with
tiledbsoma), read back by TileDB-SOMA-ML's ExperimentDataset to exactly the selected cells."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import polars as pl
import pytest
from scurate._data.manifest import read_manifest

from conftest import write_two_labs
from test_cli_select import fails_in_one_line, run

tiledbsoma = pytest.importorskip("tiledbsoma")  # scurate[soma]
pytest.importorskip("torch")  # tiledbsoma-ml imports torch
tiledbsoma_ml = pytest.importorskip("tiledbsoma_ml")  # scurate[soma-ml]

from test_soma import census_like, write_soma  # noqa: E402  (needs tiledbsoma)


@pytest.fixture(scope="module")
def lung(tmp_path_factory: pytest.TempPathFactory) -> tuple[ad.AnnData, Path, Path]:
    """A 360-cell experiment, and a selection of 30 of its lung cells (an obs filter, so the
    selected joinids are not the rows of the selection's sources)."""
    root = tmp_path_factory.mktemp("soma_ids")
    adata = census_like()
    experiment = write_soma(adata, root / "lung_atlas")
    out = root / "out"
    code, _, err = run(
        "select", experiment, "-b", "30", "-o", out, "--obs-filter", "tissue == 'lung'"
    )
    assert code == 0, err
    return adata, experiment, out


def _read_back(uri: str, ids: np.ndarray, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """The joinids and X rows TileDB-SOMA-ML's ExperimentDataset yields for ``ids``."""
    with (
        tiledbsoma.Experiment.open(uri) as exp,
        exp.axis_query("RNA", obs_query=tiledbsoma.AxisQuery(coords=(ids,))) as query,
    ):
        dataset = tiledbsoma_ml.ExperimentDataset(
            query, layer_name=layer, batch_size=16, shuffle=True, seed=0
        )
        batches = list(dataset)
    joinids = np.concatenate([obs["soma_joinid"].to_numpy() for _, obs in batches])
    x = np.vstack([x for x, _ in batches])
    return joinids, x


def test_tiledbsoma_ml_reads_exactly_the_selected_cells(
    lung: tuple[ad.AnnData, Path, Path], tmp_path: Path
) -> None:
    adata, experiment, out = lung
    code, stdout, err = run("export-soma-ids", out, "-o", tmp_path / "ids")
    assert code == 0, err
    assert "30 cells of" in stdout and "lung_atlas" in stdout
    index = json.loads((tmp_path / "ids" / "index.json").read_text())
    assert index["obs_filter"] == "tissue == 'lung'" and index["not_exported"] == {}
    [entry] = index["experiments"]
    assert entry["uri"] == str(experiment) and entry["measurement"] == "RNA"
    assert entry["layer"] == "raw" and entry["n_cells"] == 30
    ids = pl.read_parquet(tmp_path / "ids" / entry["file"])
    chosen = read_manifest(out / "manifest.parquet").filter("selected").sort("selection_rank")
    assert ids["soma_joinid"].to_list() == chosen["soma_joinid"].to_list()  # priority order
    assert ids["cell_id"].to_list() == chosen["cell_id"].to_list()
    joinids, x = _read_back(entry["uri"], ids["soma_joinid"].to_numpy(), entry["layer"])
    assert sorted(joinids.tolist()) == sorted(chosen["soma_joinid"].to_list())
    assert len(joinids) == 30
    np.testing.assert_array_equal(x, adata.X[joinids].toarray())
    assert set(adata.obs["tissue"].to_numpy()[joinids]) == {"lung"}


def test_budget_and_a_mixed_selection(tmp_path: Path) -> None:
    adata = census_like(seed=1, n=200)
    experiment = write_soma(adata, tmp_path / "atlas")
    (tmp_path / "h5ad").mkdir()
    labs = write_two_labs(tmp_path / "h5ad")
    out = tmp_path / "out"
    code, _, err = run("select", experiment, labs[0], "-b", "120", "-o", out)
    assert code == 0, err
    code, stdout, err = run("export-soma-ids", out, "-o", tmp_path / "ids", "-b", "60", "--json")
    assert code == 0, err
    index = json.loads(stdout)
    chosen = read_manifest(out / "manifest.parquet").filter("selected").sort("selection_rank")
    first = chosen.head(60)
    from_soma = first.filter(pl.col("dataset_id") == "atlas")
    assert 0 < from_soma.height < 60
    [entry] = index["experiments"]
    assert entry["n_cells"] == from_soma.height
    assert index["not_exported"] == {str(labs[0]): 60 - from_soma.height}
    joinids, x = _read_back(
        entry["uri"],
        pl.read_parquet(tmp_path / "ids" / entry["file"])["soma_joinid"].to_numpy(),
        entry["layer"],
    )
    assert sorted(joinids.tolist()) == sorted(from_soma["soma_joinid"].to_list())
    np.testing.assert_array_equal(x, adata.X[joinids].toarray())
    # a second export into the same folder needs --overwrite
    fails_in_one_line(["export-soma-ids", out, "-o", tmp_path / "ids"], "not empty", "--overwrite")
    code, _, err = run("export-soma-ids", out, "-o", tmp_path / "ids", "--overwrite")
    assert code == 0, err
    assert (
        json.loads((tmp_path / "ids" / "index.json").read_text())["experiments"][0]["n_cells"]
        == (chosen["dataset_id"] == "atlas").sum()
    )


def test_bad_input_is_one_line(
    lung: tuple[ad.AnnData, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "labs").mkdir()
    labs = write_two_labs(tmp_path / "labs")
    code, _, err = run("select", *labs, "-b", "30", "-o", tmp_path / "h5ad_out")
    assert code == 0, err
    fails_in_one_line(
        ["export-soma-ids", tmp_path / "h5ad_out", "-o", tmp_path / "ids"],
        "no selected cell comes from a TileDB-SOMA experiment",
        "use materialize",
    )
    assert not (tmp_path / "ids").exists()
    fails_in_one_line(["export-soma-ids", lung[2]], "-o/--out: give a folder")
    fails_in_one_line(
        ["export-soma-ids", tmp_path / "nowhere", "-o", tmp_path / "ids"], "no such selection"
    )
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    fails_in_one_line(
        ["export-soma-ids", lung[2], "-o", tmp_path / "taken", "--overwrite"],
        "holds 'notes.txt', which export-soma-ids did not write",
    )
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    monkeypatch.setitem(sys.modules, "tiledbsoma", None)  # as if scurate[soma] were missing
    fails_in_one_line(
        ["export-soma-ids", lung[2], "-o", tmp_path / "ids2"], "pip install 'scurate[soma]'"
    )

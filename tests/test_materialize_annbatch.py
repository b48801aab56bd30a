"""scurate materialize --format annbatch: the selection written by annbatch's own writer, read
back by annbatch's Loader to exactly the selected cells (annbatch needs Python >= 3.12; on an
older Python the command says so in one line)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import rows_on_symbols, select_two_labs, selected_cells
from test_cli_select import fails_in_one_line, run

BUDGET = 300
NEW_PYTHON = sys.version_info >= (3, 12)


@pytest.fixture(scope="module")
def selected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return select_two_labs(tmp_path_factory.mktemp("annbatch"), BUDGET, seed=5)


@pytest.mark.skipif(NEW_PYTHON, reason="the message for a Python older than annbatch needs")
def test_an_old_python_is_one_line(selected: Path, tmp_path: Path) -> None:
    fails_in_one_line(
        ["materialize", selected, "--format", "annbatch", "-o", tmp_path / "c"],
        "--format annbatch: annbatch needs Python >= 3.12, this is 3.",
        "pip install 'scurate[annbatch]'",
    )
    assert not (tmp_path / "c").exists()


@pytest.mark.skipif(not NEW_PYTHON, reason="annbatch needs Python >= 3.12")
def test_without_annbatch_one_line_names_the_extra(
    selected: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "annbatch", None)  # as if scurate[annbatch] were missing
    fails_in_one_line(
        ["materialize", selected, "--format", "annbatch", "-o", tmp_path / "c"],
        "--format annbatch needs annbatch: pip install 'scurate[annbatch]'",
    )


def _read_with_annbatch(collection: Path) -> tuple[list[str], sp.csr_matrix, object]:
    import annbatch
    import pandas as pd

    loader = annbatch.Loader(
        batch_size=32, chunk_size=16, preload_nchunks=4, shuffle=True, preload_to_gpu=False
    )
    loader.use_collection(annbatch.DatasetCollection(collection, mode="r"))
    batches = list(loader)
    obs = pd.concat([b["obs"] for b in batches])
    x = sp.vstack([sp.csr_matrix(b["X"]) for b in batches], format="csr")
    return list(obs.index), x, obs


@pytest.mark.filterwarnings("ignore::FutureWarning")  # anndata's, in annbatch's reads
@pytest.mark.filterwarnings("ignore::UserWarning")  # zarr's on consolidated metadata
def test_annbatch_reads_back_exactly_the_selected_cells(selected: Path, tmp_path: Path) -> None:
    annbatch = pytest.importorskip("annbatch")  # scurate[annbatch], Python >= 3.12
    out = tmp_path / "collection"
    code, stdout, err = run(
        "materialize", selected, "--format", "annbatch", "--shard-size", "128", "-o", out
    )
    assert code == 0, err
    assert "an annbatch collection of" in stdout
    index = json.loads((out / "index.json").read_text())
    assert index["complete"] and index["n_cells"] == BUDGET and index["options"]["shuffle"]
    ids, x, obs = _read_with_annbatch(out / "collection.zarr")
    truth = selected_cells(selected)
    assert sorted(ids) == sorted(truth["cell_id"].to_list()) and len(ids) == BUDGET
    genes = np.array(index["gene_names"], dtype=object)
    by_id = {c: i for i, c in enumerate(ids)}
    for (source,), part in truth.group_by(["source"]):
        at = [by_id[c] for c in part["cell_id"]]
        expected = rows_on_symbols(str(source), part["row"].to_numpy(), genes)
        assert np.array_equal(x[at].toarray(), expected)
    # the manifest's columns ride along in obs
    got = obs.loc[truth["cell_id"].to_list()]
    assert np.array_equal(got["selection_rank"].to_numpy(), truth["selection_rank"].to_numpy())
    assert np.allclose(got["weight"].to_numpy(), truth["weight"].to_numpy())
    assert got["cell_type"].astype(str).to_list() == truth["cell_type"].to_list()
    assert np.allclose(got["novelty"].to_numpy(), truth["novelty"].to_numpy(), equal_nan=True)
    assert set(got["policy"].astype(str)) == set(truth["policy"].to_list())
    # written shuffled, as annbatch expects: not in priority order
    stored = annbatch.DatasetCollection(out / "collection.zarr", mode="r").obs(["selection_rank"])
    assert not np.array_equal(stored["selection_rank"].to_numpy(), np.arange(BUDGET))
    # the same options again: complete, skipped; other options need --overwrite
    code, stdout, err = run(
        "materialize", selected, "--format", "annbatch", "--shard-size", "128", "-o", out
    )
    assert code == 0 and "already complete" in stdout, err
    fails_in_one_line(
        ["materialize", selected, "--format", "annbatch", "-o", out, "--seed", "3"],
        "not empty",
        "--overwrite",
    )

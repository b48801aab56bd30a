"""CellLoader on a real selection of two real h5ad files with different gene orders."""

from __future__ import annotations

import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from scurate._data import manifest as mf
from scurate.errors import InputError, OptionError
from scurate.loader import Batch, CellLoader

from conftest import (
    N_GENES,
    rows_on_symbols,
    select_two_labs,
    selected_cells,
    write_selection_folder,
    write_two_labs,
)

BUDGET = 400


@pytest.fixture(scope="module")
def selected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lab_a: symbols in var_names; lab_b: versioned Ensembl ids in var_names, symbols in
    var['gene_symbols'], 90 % of the genes in a shuffled order; a selection of 400 of 1598."""
    return select_two_labs(tmp_path_factory.mktemp("loader"), BUDGET, seed=7)


def _epoch(loader: CellLoader) -> list[Batch]:
    return list(loader)


def _ids(batches: list[Batch]) -> list[str]:
    return [c for b in batches for c in b.cell_id]


def test_one_epoch_yields_every_selected_cell_once_with_its_source_row(selected: Path) -> None:
    loader = CellLoader(selected, batch_size=37, block_size=16, buffer_size=3)
    batches = _epoch(loader)
    assert len(batches) == len(loader) == -(-BUDGET // 37)
    assert all(len(b) == 37 for b in batches[:-1])
    ids = _ids(batches)
    truth = selected_cells(selected)
    assert sorted(ids) == sorted(truth["cell_id"].to_list())
    assert len(set(ids)) == BUDGET
    assert loader.gene_kind == "symbol"
    assert len(loader.genes) == int(0.9 * N_GENES)  # the genes lab_b kept: both sources share
    x = np.vstack([b.X.toarray() for b in batches])
    assert x.dtype == np.float32 and batches[0].X.format == "csr"
    got = pl.DataFrame(
        {
            "cell_id": ids,
            "cell_type_got": np.concatenate([b.labels["cell_type"] for b in batches]),
            "weight_got": np.concatenate([b.weight for b in batches]),
            "rank_got": np.concatenate([b.selection_rank for b in batches]),
            "i": np.arange(BUDGET),
        }
    ).join(truth, on="cell_id")
    assert (got["cell_type_got"] == got["cell_type"]).all()
    assert got["cell_type"].null_count() == 0
    assert np.array_equal(got["weight_got"].to_numpy(), got["weight"].to_numpy())
    assert np.array_equal(got["rank_got"].to_numpy(), got["selection_rank"].to_numpy())
    for (source,), part in got.group_by(["source"]):
        expected = rows_on_symbols(str(source), part["row"].to_numpy(), loader.genes)
        assert np.array_equal(x[part["i"].to_numpy()], expected)
    assert x.sum() > 0


def test_epochs_differ_and_the_same_seed_repeats(selected: Path) -> None:
    loader = CellLoader(selected, batch_size=50, seed=3, block_size=16, buffer_size=4)
    first = _ids(_epoch(loader))
    loader.set_epoch(1)
    second = _ids(_epoch(loader))
    assert sorted(first) == sorted(second)
    assert first != second
    again = CellLoader(selected, batch_size=50, seed=3, block_size=16, buffer_size=4)
    assert _ids(_epoch(again)) == first
    again.set_epoch(1)
    assert _ids(_epoch(again)) == second
    other = CellLoader(selected, batch_size=50, seed=4, block_size=16, buffer_size=4)
    assert _ids(_epoch(other)) != first


def test_without_shuffle_cells_come_in_priority_order(selected: Path) -> None:
    loader = CellLoader(selected, batch_size=64, shuffle=False, block_size=16, buffer_size=2)
    ranks = np.concatenate([b.selection_rank for b in loader])
    assert np.array_equal(ranks, np.arange(BUDGET))


def test_rank_parts_are_disjoint_and_cover_theselected_cells(selected: Path) -> None:
    parts = [
        _ids(_epoch(CellLoader(selected, batch_size=32, rank=r, world_size=3, seed=1)))
        for r in range(3)
    ]
    assert sum(len(p) for p in parts) == BUDGET
    assert set().union(*map(set, parts)) == set(selected_cells(selected)["cell_id"].to_list())
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    whole = CellLoader(selected, rank=1, world_size=3, seed=1)
    assert whole.n_cells == len(parts[1])


def test_budget_keeps_the_first_ranks(selected: Path) -> None:
    loader = CellLoader(selected, budget=120, batch_size=25, seed=5)
    ranks = np.concatenate([b.selection_rank for b in loader])
    assert sorted(ranks.tolist()) == list(range(120))
    assert len(loader) == 5


def test_a_gene_list_sets_the_columns(selected: Path) -> None:
    lab_a = ad.read_h5ad(selected.parent / "lab_a.h5ad")
    lab_b = ad.read_h5ad(selected.parent / "lab_b.h5ad")
    only_a = sorted(set(lab_a.var_names) - set(lab_b.var["gene_symbols"]))[0]
    genes = ["SG0010", only_a, "SG0003"]
    loader = CellLoader(selected, genes=genes, shuffle=False, labels=())
    assert list(loader.genes) == genes
    batch = next(iter(loader))
    assert batch.X.shape[1] == 3 and batch.labels == {}
    for (source,), part in (
        pl.DataFrame({"source": [str(selected.parent / f"{d}.h5ad") for d in batch.dataset_id]})
        .with_row_index("i")
        .group_by(["source"])
    ):
        i = part["i"].to_numpy()
        expected = rows_on_symbols(str(source), batch.row[i], np.array(genes, dtype=object))
        assert np.array_equal(batch.X[i].toarray(), expected)


def _moved_copy(selected: Path, tmp_path: Path) -> Path:
    """A copy of the selection whose manifest points at copies of the sources in tmp_path."""
    for name in ("lab_a.h5ad", "lab_b.h5ad"):
        shutil.copy(selected.parent / name, tmp_path / name)
    frame = mf.read_manifest(selected / "manifest.parquet").with_columns(
        pl.col("source").str.replace(str(selected.parent), str(tmp_path), literal=True)
    )
    (tmp_path / "out").mkdir()
    return write_selection_folder(frame, tmp_path / "out")


def test_bad_input_gets_one_line(selected: Path, tmp_path: Path) -> None:
    cases: list[tuple[type[Exception], str, dict[str, object], Path]] = [
        (InputError, "no such selection folder", {}, tmp_path / "nowhere"),
        (InputError, "no manifest.parquet", {}, tmp_path),
        (OptionError, "budget=401 is larger than the selection", {"budget": 401}, selected),
        (OptionError, "rank=3: must be in 0..2", {"rank": 3, "world_size": 3}, selected),
        (OptionError, "rank=-1", {"rank": -1}, selected),
        (OptionError, "genes: no source of the selection has NOPE1, NOPE2", {}, selected),
        (OptionError, "labels:", {"labels": ("no_such_column",)}, selected),
        (OptionError, "batch_size=0", {"batch_size": 0}, selected),
        (OptionError, "seed=-1: must be a whole number >= 0", {"seed": -1}, selected),
        (OptionError, "world_size=9 is larger", {"budget": 8, "world_size": 9}, selected),
    ]
    cases[5][2]["genes"] = ["SG0001", "NOPE1", "NOPE2"]
    for error, text, options, where in cases:
        with pytest.raises(error, match=text) as info:
            CellLoader(where, **options)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)


def test_a_source_moved_or_changed_since_selection_is_named(selected: Path, tmp_path: Path) -> None:
    out = _moved_copy(selected, tmp_path)
    assert CellLoader(out).n_cells == BUDGET
    (tmp_path / "lab_b.h5ad").rename(tmp_path / "elsewhere.h5ad")
    with pytest.raises(InputError, match=r"lab_b\.h5ad: source not found \(moved"):
        CellLoader(out)
    lab_b = ad.read_h5ad(tmp_path / "elsewhere.h5ad")
    lab_b = lab_b[::-1].copy()  # same cells, other rows
    lab_b.write_h5ad(tmp_path / "lab_b.h5ad")
    with pytest.raises(InputError, match=r"lab_b\.h5ad: row \d+ holds 'b_\d+', the selection"):
        CellLoader(out)


def _with_sources(out: Path, sources: dict[str, str]) -> Path:
    """The manifest of ``out`` with its source paths replaced as ``sources`` says."""
    path = out / "manifest.parquet"
    frame = mf.read_manifest(path).with_columns(pl.col("source").replace(sources))
    write_selection_folder(frame, out)
    return path


def test_a_source_path_with_dotdot_is_refused_even_where_it_leads_to_the_file(
    selected: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _moved_copy(selected, tmp_path)
    lab_a = str(tmp_path / "lab_a.h5ad")
    manifest = _with_sources(out, {lab_a: "../lab_a.h5ad"})
    monkeypatch.chdir(out)  # from here, ../lab_a.h5ad is the real file
    assert Path("../lab_a.h5ad").is_file()
    with pytest.raises(InputError) as err:
        CellLoader(out)
    assert str(err.value) == (
        f"{manifest}: a row's source '../lab_a.h5ad' has '..' in its path; "
        "give the source's absolute path (as scurate writes it)"
    )
    _with_sources(out, {"../lab_a.h5ad": f"{tmp_path}/out/../lab_a.h5ad"})
    with pytest.raises(InputError, match=r"source '.*/out/\.\./lab_a\.h5ad' has '\.\.' in its"):
        CellLoader(out)


def test_a_source_that_is_not_a_file_is_one_line_naming_the_manifest(
    selected: Path, tmp_path: Path
) -> None:
    out = _moved_copy(selected, tmp_path)
    (tmp_path / "a_folder.h5ad").mkdir()
    manifest = _with_sources(out, {str(tmp_path / "lab_b.h5ad"): str(tmp_path / "a_folder.h5ad")})
    with pytest.raises(InputError) as err:
        CellLoader(out)
    assert str(err.value).startswith(
        f"{manifest}: a row's source '{tmp_path}/a_folder.h5ad' is not one source a reader opens"
    )


def test_select_stores_each_source_absolute_and_without_dotdot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scurate

    (tmp_path / "data").mkdir()
    (tmp_path / "work").mkdir()
    write_two_labs(tmp_path / "data")
    monkeypatch.chdir(tmp_path / "work")
    scurate.select_to_dir(["../data/lab_a.h5ad", "../work/../data"], 50, out="sel", seed=0)
    sources = set(pl.read_parquet("sel/manifest.parquet")["source"].to_list())
    assert sources == {str(tmp_path / "data" / "lab_a.h5ad"), str(tmp_path / "data" / "lab_b.h5ad")}
    monkeypatch.chdir(tmp_path)
    assert CellLoader(tmp_path / "work" / "sel").n_cells == 50


def test_dense_and_csc_sources_read_the_same_rows(selected: Path, tmp_path: Path) -> None:
    out = _moved_copy(selected, tmp_path)
    lab_a = ad.read_h5ad(tmp_path / "lab_a.h5ad")
    lab_a.X = lab_a.X.toarray()
    lab_a.write_h5ad(tmp_path / "lab_a.h5ad")
    lab_b = ad.read_h5ad(tmp_path / "lab_b.h5ad")
    lab_b.X = sp.csc_matrix(lab_b.X)
    lab_b.write_h5ad(tmp_path / "lab_b.h5ad")
    options = {"batch_size": 64, "seed": 2, "block_size": 8, "buffer_size": 5}
    csr = _epoch(CellLoader(selected, **options))  # type: ignore[arg-type]
    other = _epoch(CellLoader(out, **options))  # type: ignore[arg-type]
    assert _ids(csr) == _ids(other)
    for one, two in zip(csr, other, strict=True):
        assert np.array_equal(one.X.toarray(), two.X.toarray())


def test_torch_dataset_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import scurate.loader

    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    monkeypatch.delitem(sys.modules, "scurate._feed.torch_dataset", raising=False)
    with pytest.raises(ImportError, match=r"needs torch: pip install 'scurate\[torch\]'") as info:
        scurate.loader.TorchDataset  # noqa: B018
    assert "\n" not in str(info.value)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        scurate.loader.Nope  # type: ignore[attr-defined]  # noqa: B018

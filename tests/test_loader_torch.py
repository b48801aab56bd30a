"""TorchDataset on a real selection of two real h5ad files, through a real DataLoader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scurate.errors import OptionError

from conftest import rows_on_symbols, select_two_labs, selected_cells

torch = pytest.importorskip("torch")
from scurate.loader import TorchDataset  # noqa: E402  (needs torch)
from torch.utils.data import DataLoader  # noqa: E402

BUDGET = 300


@pytest.fixture(scope="module")
def selected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lab_a: symbols; lab_b: versioned Ensembl ids, symbols in var, 90 % of the genes,
    shuffled; a selection of 300 of 1598 cells."""
    return select_two_labs(tmp_path_factory.mktemp("loader_torch"), BUDGET, seed=11)


def _epoch(dataset: TorchDataset, workers: int) -> list[dict[str, object]]:
    return list(DataLoader(dataset, batch_size=None, num_workers=workers))


def test_two_workers_yield_every_cell_once_with_its_values(selected: Path) -> None:
    dataset = TorchDataset(selected, batch_size=32, seed=1, block_size=8, buffer_size=3)
    batches = _epoch(dataset, workers=2)
    ids = [c for b in batches for c in b["cell_id"]]  # type: ignore[attr-defined]
    truth = selected_cells(selected)
    assert len(ids) == len(set(ids)) == BUDGET == dataset.n_cells
    assert set(ids) == set(truth["cell_id"].to_list())
    x = torch.cat([b["X"] for b in batches]).numpy()  # type: ignore[misc]
    assert x.dtype == np.float32 and x.shape == (BUDGET, len(dataset.genes))
    classes = dataset.classes["cell_type"]
    codes = torch.cat([b["labels"]["cell_type"] for b in batches]).tolist()  # type: ignore[index]
    got = pl.DataFrame(
        {
            "cell_id": ids,
            "label_got": [classes[c] if c >= 0 else None for c in codes],
            "weight_got": torch.cat([b["weight"] for b in batches]).numpy(),  # type: ignore[misc]
            "rank_got": torch.cat([b["selection_rank"] for b in batches]).numpy(),  # type: ignore[misc]
            "i": np.arange(BUDGET),
        }
    ).join(truth, on="cell_id")
    assert got["cell_type"].null_count() == 0
    assert (got["label_got"] == got["cell_type"]).all()
    assert np.array_equal(got["weight_got"].to_numpy(), got["weight"].to_numpy())
    assert np.array_equal(got["rank_got"].to_numpy(), got["selection_rank"].to_numpy())
    for (source,), part in got.group_by(["source"]):
        expected = rows_on_symbols(str(source), part["row"].to_numpy(), dataset.genes)
        assert np.array_equal(x[part["i"].to_numpy()], expected)
    assert x.sum() > 0


def test_ranks_and_workers_split_the_selection_once(selected: Path) -> None:
    parts = []
    for rank in range(2):
        dataset = TorchDataset(selected, batch_size=16, rank=rank, world_size=2, seed=4)
        ids = [c for b in _epoch(dataset, workers=2) for c in b["cell_id"]]  # type: ignore[attr-defined]
        assert len(ids) == dataset.n_cells
        parts.append(set(ids))
        dataset.set_epoch(1)
        again = [c for b in _epoch(dataset, workers=2) for c in b["cell_id"]]  # type: ignore[attr-defined]
        assert sorted(again) == sorted(ids) and again != ids  # a new order, the same cells
    assert not parts[0] & parts[1]
    assert parts[0] | parts[1] == set(selected_cells(selected)["cell_id"].to_list())


# torch's own: CSR is "beta", and its rebuild of a sparse tensor sent by a worker warns
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state:UserWarning")
@pytest.mark.filterwarnings("ignore:Sparse invariant checks are implicitly disabled:UserWarning")
def test_sparse_layouts_hold_the_dense_values(selected: Path) -> None:
    options = {"batch_size": 50, "seed": 2, "budget": 120}
    dense = _epoch(TorchDataset(selected, **options), workers=0)  # type: ignore[arg-type]
    for layout, kind in (("csr", torch.sparse_csr), ("coo", torch.sparse_coo)):
        sparse = _epoch(TorchDataset(selected, layout=layout, **options), workers=2)  # type: ignore[arg-type]
        assert sparse[0]["X"].layout == kind  # type: ignore[attr-defined]
        by_id = {
            c: row
            for b in sparse
            for c, row in zip(b["cell_id"], b["X"].to_dense().numpy(), strict=True)  # type: ignore[attr-defined, call-overload]
        }
        for b in dense:
            for c, row in zip(b["cell_id"], b["X"].numpy(), strict=True):  # type: ignore[attr-defined, call-overload]
                assert np.array_equal(by_id[c], row)
        assert len(by_id) == 120


def test_a_linear_model_trains_on_it(selected: Path) -> None:
    torch.manual_seed(0)
    dataset = TorchDataset(selected, batch_size=64, seed=0)
    n_classes = len(dataset.classes["cell_type"])
    model = torch.nn.Linear(len(dataset.genes), n_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for batch in DataLoader(dataset, batch_size=None, num_workers=2):
            x = torch.log1p(batch["X"])
            loss = torch.nn.functional.cross_entropy(
                model(x), batch["labels"]["cell_type"], ignore_index=-1, reduction="none"
            )
            loss = (loss * batch["weight"]).sum() / batch["weight"].sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])


def test_a_bad_layout_is_one_line(selected: Path) -> None:
    with pytest.raises(OptionError, match=r"layout='bsr': give one of dense, csr, coo"):
        TorchDataset(selected, layout="bsr")


# torch's advice on a 2-core machine; 4 workers are what is tested here
@pytest.mark.filterwarnings("ignore:This DataLoader will create 4 worker processes:UserWarning")
@pytest.mark.parametrize("sampling", ["uniform", "weight", "balanced:cell_type"])
def test_the_same_batches_at_one_two_and_four_workers(selected: Path, sampling: str) -> None:
    options = {"batch_size": 24, "seed": 6, "sampling": sampling, "block_size": 8}
    dataset = TorchDataset(selected, **options)  # type: ignore[arg-type]
    dataset.set_epoch(2)
    runs = {w: _epoch(dataset, workers=w) for w in (0, 1, 2, 4)}
    expected = [b.cell_id.tolist() for b in _loader_epoch(selected, options, epoch=2)]
    assert len(expected) == len(dataset) == -(-BUDGET // 24)
    for workers, batches in runs.items():
        assert [b["cell_id"].tolist() for b in batches] == expected, f"{workers} workers"
        for b, first in zip(batches, runs[0], strict=True):
            assert torch.equal(b["X"], first["X"])  # type: ignore[arg-type]


def _loader_epoch(selected: Path, options: dict[str, object], epoch: int) -> list[object]:
    from scurate.loader import CellLoader

    loader = CellLoader(selected, **options)  # type: ignore[arg-type]
    loader.set_epoch(epoch)
    return list(loader)


def test_a_batch_reads_like_a_dict_and_crosses_processes_as_numpy(selected: Path) -> None:
    import pickle

    batch = next(iter(TorchDataset(selected, batch_size=40, seed=3)))
    assert list(batch.keys()) == [k for k, _ in batch.items()] == list(batch)
    assert "X" in batch and "nope" not in batch and len(batch) == 7
    with pytest.raises(KeyError):
        batch["nope"]
    sent = pickle.dumps(batch)
    assert b"_rebuild" not in sent  # numpy arrays only: no tensor goes through shared memory
    back = pickle.loads(sent)
    assert (
        torch.equal(back["X"], batch["X"]) and back["cell_id"].tolist() == batch["cell_id"].tolist()
    )
    assert torch.equal(back["labels"]["cell_type"], batch["labels"]["cell_type"])
    assert set(dict(back.items())) == {
        "X",
        "labels",
        "weight",
        "selection_rank",
        "row",
        "cell_id",
        "dataset_id",
    }

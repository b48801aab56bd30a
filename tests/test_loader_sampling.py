"""CellLoader's samplers (uniform, weight, balanced:COL) on a real selection of two h5ad files:
what each epoch draws, over many epochs, across ranks and worker splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scurate._data import manifest as mf
from scurate.errors import InputError, OptionError
from scurate.loader import CellLoader

from conftest import select_two_labs, selected_cells, write_selection_folder

BUDGET = 300
EPOCHS = 40


@pytest.fixture(scope="module")
def selected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A selection of 300 of 1598 cells (5 cell types, one of them rare) whose weights are
    rewritten to 1, 2, ... 6 (cell i has weight i % 6 + 1): a strongly uneven pool."""
    out = select_two_labs(tmp_path_factory.mktemp("sampling"), BUDGET, seed=3)
    frame = mf.read_manifest(out / "manifest.parquet").with_columns(
        weight=pl.when("selected").then(pl.col("selection_rank") % 6 + 1)
    )
    return write_selection_folder(frame, out)


def _draws(loader: CellLoader, epochs: int = EPOCHS) -> np.ndarray:
    """How often each cell (position in priority order) was drawn over ``epochs`` epochs."""
    counts = np.zeros(len(loader.cell_ids), dtype=np.int64)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        np.add.at(counts, loader.positions(), 1)
    return counts


def _chi2_p(observed: np.ndarray, expected_share: np.ndarray) -> float:
    expected = observed.sum() * expected_share / expected_share.sum()
    return float(stats.chisquare(observed, expected).pvalue)


def test_weighted_draws_follow_the_weights(selected: Path) -> None:
    loader = CellLoader(selected, sampling="weight", seed=0)
    weight = selected_cells(selected)["weight"].to_numpy()
    assert np.array_equal(loader.cell_ids, selected_cells(selected)["cell_id"].to_numpy())
    counts = _draws(loader)
    assert counts.sum() == EPOCHS * BUDGET  # epoch_size defaults to the selection's size
    assert _chi2_p(counts, weight) > 0.01  # fixed seed: the same p every run
    # the check can fail: uniform draws of the same size are far from these weights
    uniform = CellLoader(selected, sampling="uniform", replacement=True, seed=0)
    assert _chi2_p(_draws(uniform), weight) < 1e-6
    # pooled by weight, each weight class gets its share of the draws within 5 %
    for w in range(1, 7):
        share = counts[weight == w].sum() / counts.sum()
        assert share == pytest.approx(weight[weight == w].sum() / weight.sum(), rel=0.05)


def test_weighted_without_replacement_draws_each_cell_once(selected: Path) -> None:
    loader = CellLoader(selected, sampling="weight", replacement=False, epoch_size=100, seed=1)
    positions = loader.positions()
    assert len(positions) == len(set(positions.tolist())) == 100
    weight = selected_cells(selected)["weight"].to_numpy()
    counts = _draws(loader, epochs=60)
    # heavier cells are drawn more often, though none more than once an epoch
    heavy, light = counts[weight == 6].mean(), counts[weight == 1].mean()
    assert heavy > 3 * light and counts.max() <= 60


def test_balanced_gives_each_class_an_equal_share(selected: Path) -> None:
    truth = selected_cells(selected)
    types = truth["cell_type"].to_numpy().astype(str)
    sizes = Counter(types)
    assert min(sizes.values()) < BUDGET / len(sizes) / 4  # the classes are very uneven
    loader = CellLoader(selected, sampling="balanced:cell_type", seed=2)
    for epoch in range(3):
        loader.set_epoch(epoch)
        drawn = Counter(types[loader.positions()])
        assert set(drawn) == set(sizes)
        assert max(drawn.values()) - min(drawn.values()) <= 1  # equal to one cell
        assert sum(drawn.values()) == BUDGET
    # within a class, cells are drawn uniformly (chi-square over the largest class)
    counts = _draws(loader)
    biggest = max(sizes, key=sizes.__getitem__)
    members = counts[types == biggest]
    assert _chi2_p(members, np.ones(len(members))) > 0.01
    # over datasets: the two labs get half each, though their shares of the selection differ
    by_lab = CellLoader(selected, sampling="balanced:dataset_id", seed=2, epoch_size=1000)
    labs = Counter(truth["dataset_id"].to_numpy()[by_lab.positions()].tolist())
    assert sorted(labs.values()) == [500, 500]


def test_balanced_skips_cells_where_the_column_is_null(selected: Path, tmp_path: Path) -> None:
    frame = mf.read_manifest(selected / "manifest.parquet").with_columns(
        cell_type=pl.when(pl.col("selection_rank") < 200).then("cell_type")
    )
    out = write_selection_folder(frame, tmp_path)
    loader = CellLoader(out, sampling="balanced:cell_type", seed=0)
    assert loader.positions().max() < 200
    assert len(loader.positions()) == BUDGET


def test_draws_repeat_by_seed_and_epoch(selected: Path) -> None:
    for sampling in ("weight", "balanced:cell_type"):
        one = CellLoader(selected, sampling=sampling, seed=5)
        two = CellLoader(selected, sampling=sampling, seed=5)
        assert np.array_equal(one.positions(), two.positions())
        two.set_epoch(1)
        assert not np.array_equal(one.positions(), two.positions())
        other = CellLoader(selected, sampling=sampling, seed=6)
        assert not np.array_equal(one.positions(), other.positions())


@pytest.mark.parametrize("sampling", ["uniform", "weight", "balanced:cell_type"])
def test_ranks_split_one_draw(selected: Path, sampling: str) -> None:
    whole = CellLoader(selected, sampling=sampling, seed=7, epoch_size=250)
    parts = [
        CellLoader(selected, sampling=sampling, seed=7, epoch_size=250, rank=r, world_size=3)
        for r in range(3)
    ]
    assert [p.n_cells for p in parts] == [84, 83, 83]
    drawn = np.concatenate([p.positions() for p in parts])
    assert sorted(drawn.tolist()) == sorted(whole.positions().tolist())
    if sampling == "uniform":  # without replacement: 250 distinct cells, in disjoint parts
        assert len(set(drawn.tolist())) == 250


def test_batches_read_the_drawn_cells(selected: Path) -> None:
    loader = CellLoader(selected, sampling="weight", seed=9, batch_size=40, epoch_size=500)
    positions = loader.positions()
    batches = list(loader)
    assert [len(b) for b in batches] == [40] * 12 + [20] == [40] * (len(loader) - 1) + [20]
    ids = np.concatenate([b.cell_id for b in batches])
    assert np.array_equal(ids, loader.cell_ids[positions])
    # a cell drawn twice is read twice, with the same values
    first = {}
    for b in batches:
        for c, row in zip(b.cell_id, b.X.toarray(), strict=True):
            if c in first:
                assert np.array_equal(first[c], row)
            first[c] = row
    assert len(first) < 500


@pytest.mark.parametrize("parts", [1, 2, 4])
def test_worker_pieces_deal_the_same_batches(selected: Path, parts: int) -> None:
    options = {"sampling": "balanced:cell_type", "seed": 4, "batch_size": 32, "block_size": 8}
    whole = [b.cell_id.tolist() for b in CellLoader(selected, **options)]  # type: ignore[arg-type]
    loader = CellLoader(selected, **options)  # type: ignore[arg-type]
    pieces = [list(loader.split(p, parts)) for p in range(parts)]
    assert sum(len(loader.split(p, parts)) for p in range(parts)) == len(whole)
    dealt = [pieces[j % parts][j // parts].cell_id.tolist() for j in range(len(whole))]
    assert dealt == whole


def test_read_ahead_changes_nothing_but_timing(selected: Path) -> None:
    options = {"sampling": "weight", "seed": 3, "batch_size": 50}
    on = list(CellLoader(selected, **options))  # type: ignore[arg-type]
    off = list(CellLoader(selected, read_ahead=False, **options))  # type: ignore[arg-type]
    assert len(on) == len(off)
    for one, two in zip(on, off, strict=True):
        assert np.array_equal(one.cell_id, two.cell_id)
        assert (one.X != two.X).nnz == 0
    # a loop left early stops the read-ahead thread with it
    for _ in CellLoader(selected, **options):  # type: ignore[arg-type]
        break


def test_bad_sampling_options_are_one_line(selected: Path, tmp_path: Path) -> None:
    nulls = mf.read_manifest(selected / "manifest.parquet").with_columns(
        development_stage=pl.lit(None, dtype=pl.String)
    )
    all_null = write_selection_folder(nulls, tmp_path)
    cases: list[tuple[type[Exception], str, dict[str, object], Path]] = [
        (
            OptionError,
            r"sampling='weighted': give uniform, weight or balanced:COLUMN",
            {},
            selected,
        ),
        (OptionError, r"sampling='balanced': give uniform", {"sampling": "balanced"}, selected),
        (
            OptionError,
            r"sampling='balanced:tissue_kind': .*manifest\.parquet has no column 'tissue_kind'",
            {"sampling": "balanced:tissue_kind"},
            selected,
        ),
        (
            OptionError,
            r"column 'development_stage' is null for every selected cell of",
            {"sampling": "balanced:development_stage"},
            all_null,
        ),
        (
            OptionError,
            r"without replacement: '[\w ]+' has \d+ cells, fewer than its share of the epoch",
            {"sampling": "balanced:cell_type", "replacement": False},
            selected,
        ),
        (
            OptionError,
            r"epoch_size=301 is larger than the selection \(300 cells\); use replacement=True",
            {"epoch_size": 301, "replacement": False},
            selected,
        ),
        (OptionError, r"epoch_size=0: must be a positive integer", {"epoch_size": 0}, selected),
        (
            OptionError,
            r"shuffle=False: only with sampling='uniform'",
            {"sampling": "weight", "shuffle": False},
            selected,
        ),
        (OptionError, r"replacement='yes'", {"replacement": "yes"}, selected),
    ]
    cases[0][2]["sampling"] = "weighted"
    for error, text, options, where in cases:
        with pytest.raises(error, match=text) as info:
            CellLoader(where, **options)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)


def test_a_negative_weight_is_named(selected: Path, tmp_path: Path) -> None:
    frame = mf.read_manifest(selected / "manifest.parquet").with_columns(
        weight=pl.when(pl.col("selection_rank") == 4).then(-2.0).otherwise("weight")
    )
    out = write_selection_folder(frame, tmp_path)
    with pytest.raises(InputError, match=r"has a weight of -2\.0 \(weights must be finite"):
        CellLoader(out, sampling="weight")
    assert CellLoader(out).n_cells == BUDGET  # uniform sampling does not read the weights

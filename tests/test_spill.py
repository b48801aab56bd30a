"""Arrays on disk (scurate._data.spill): the same results as in memory, the map's pages given
back, bad temporary folders named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scurate
from polars.testing import assert_frame_equal
from scurate._compute.faiss_index import build_index
from scurate._compute.kernels import covering_graph
from scurate._compute.scoring import exact_d2, neighbour_scores
from scurate._data import spill
from scurate.errors import InputError


def _resident_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def test_builder_on_disk_reads_back_what_was_put_and_never_leaves_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(1000, 7)).astype(np.float32)
    before = set(Path(spill.tempfile.gettempdir()).glob("scurate-*.bin"))
    built = spill.Builder(values.shape, np.float32, spill=True)
    for start in range(0, 1000, 300):
        built.put(start, values[start : start + 300])
        # unlinked from the start: a run killed mid-build leaves no file
        assert set(Path(spill.tempfile.gettempdir()).glob("scurate-*.bin")) == before
    mapped = built.done()
    assert spill.spilled(mapped) and spill.spilled(np.ascontiguousarray(mapped)[3:9])
    assert np.array_equal(mapped, values)
    assert set(Path(spill.tempfile.gettempdir()).glob("scurate-*.bin")) == before  # unlinked
    rows = rng.integers(0, 1000, 500)  # unsorted, repeated: gathered in order, by blocks
    monkeypatch.setattr(spill, "TAKE_ROWS", 64)
    assert np.array_equal(spill.take(mapped, rows), values[rows])
    assert not spill.spilled(values) and spill.to_disk(values) is values  # small: in memory


def test_release_gives_the_pages_of_a_map_back() -> None:
    values = np.ones((1 << 20, 16), dtype=np.float32)  # 64 MB
    mapped = spill.to_disk(values, spill=True)
    del values
    base = _resident_kb()
    assert float(mapped.sum()) == 16 * (1 << 20)  # reads every page
    assert _resident_kb() - base > 40_000
    spill.release()
    assert _resident_kb() - base < 10_000


def test_a_temporary_folder_without_room_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(spill.tempfile, "gettempdir", lambda: str(tmp_path / "missing"))
    with pytest.raises(InputError, match="missing: cannot make a .* set TMPDIR"):
        spill.Builder((10, 10), np.float32, spill=True)


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat", "IVF16,SQ8"])
def test_exact_distances_are_the_same_from_a_map(factory: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 12)).astype(np.float32)
    index, _ = build_index(x, factory=factory)
    _, labels = index.search(x[100:900], 8)
    labels[::7, -1] = -1
    mapped = spill.to_disk(x, spill=True)
    mapped_index, _ = build_index(mapped, factory=factory)
    in_memory = exact_d2(x, 100, labels.astype(np.int64))
    assert np.array_equal(exact_d2(mapped, 100, labels.astype(np.int64), mapped_index), in_memory)


def test_neighbour_scores_and_selection_are_the_same_on_disk(
    two_labs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 10)).astype(np.float32)
    memory = neighbour_scores(x, index_factory="IVF20,Flat")
    monkeypatch.setattr(spill, "SPILL_BYTES", 0)
    disk = neighbour_scores(x, index_factory="IVF20,Flat")
    assert spill.spilled(disk.graph.rows) and spill.spilled(disk.knn_d2)
    assert np.array_equal(disk.graph.rows, memory.graph.rows)
    assert np.array_equal(disk.graph.dist, memory.graph.dist)
    assert np.array_equal(disk.near_dup_group, memory.near_dup_group)
    assert np.array_equal(disk.density, memory.density)
    on_disk = scurate.select(two_labs, 60, seed=4, policy="facility")
    monkeypatch.setattr(spill, "SPILL_BYTES", 1 << 62)
    in_memory = scurate.select(two_labs, 60, seed=4, policy="facility")
    assert_frame_equal(on_disk.manifest, in_memory.manifest)
    kcenter = scurate.select(two_labs, 60, seed=4, policy="kcenter").manifest
    monkeypatch.setattr(spill, "SPILL_BYTES", 0)
    assert_frame_equal(scurate.select(two_labs, 60, seed=4, policy="kcenter").manifest, kcenter)


def test_covering_graph_from_maps_equals_the_one_in_memory() -> None:
    """Lists mapped from disk are read a block at a time (native count and fill per block);
    the graph is the one built from the whole lists in memory."""
    rng = np.random.default_rng(5)
    n, k = 150_000, 6  # more than two blocks of spill.BLOCK_ROWS
    near = rng.integers(0, n, size=(n, k)).astype(np.int32)
    near[rng.random((n, k)) < 0.1] = -1
    sim = rng.random((n, k)).astype(np.float32)
    want = covering_graph(near, sim)
    got = covering_graph(spill.to_disk(near, spill=True), spill.to_disk(sim, spill=True))
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    bad = near.copy()
    bad[100_000, 2] = n  # a row outside the pool, in the second block
    with pytest.raises(ValueError, match=r"near\[100000, 2\]"):
        covering_graph(spill.to_disk(bad, spill=True), spill.to_disk(sim, spill=True))

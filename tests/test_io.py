"""Opening sources: files and folders, ids, reading X in chunks, and every bad file."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from scurate._data.anndata_store import H5adSource
from scurate._data.manifest import cell_ids
from scurate._data.sources import open_sources
from scurate.errors import InputError


def test_folders_are_searched_and_ids_made_unique(two_labs: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "again"
    other.mkdir()
    (other / "lab_a.h5ad").write_bytes(two_labs[0].read_bytes())
    sources = open_sources([tmp_path])
    assert [s.dataset_id for s in sources] == ["lab_a", "lab_a-2", "lab_b"]
    assert [s.n_obs for s in sources] == [898, 898, 700]
    assert sources[0].obs_names[0] == "a_00000"


def test_obs_names_are_held_compactly_and_read_back_as_text(tmp_path: Path) -> None:
    """A file's obs names are kept in numpy's variable-width strings (no Python object per
    cell), and cell ids and the in-memory match still read them as text."""
    names = [f"AAACCTGAGAAGGCCT-{i}" for i in range(40)] + ["ü-non-ascii", "x" * 80]
    adata = ad.AnnData(sp.csr_matrix(np.ones((len(names), 3), dtype=np.float32)))
    adata.obs_names = names
    path = tmp_path / "names.h5ad"
    adata.write_h5ad(path)
    (source,) = open_sources([path])
    if hasattr(np.dtypes, "StringDType"):  # numpy >= 2
        assert source.obs_names.dtype.kind == "T"
    assert list(source.obs_names) == names
    ids = cell_ids("names", source.obs_names)
    assert ids.dtype.kind == "U" and list(ids) == [f"names/{n}" for n in names]


@pytest.mark.parametrize("layout", ["csr", "csc", "dense"])
def test_x_chunks_equal_the_matrix_whatever_the_layout(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(1)
    x = sp.random(1000, 40, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    stored = {"csr": x, "csc": x.tocsc(), "dense": x.toarray()}[layout]
    ad.AnnData(stored).write_h5ad(tmp_path / "x.h5ad")
    source = H5adSource(tmp_path / "x.h5ad", "x")
    chunks = list(source.iter_x(chunk_rows=300))
    assert [start for start, _ in chunks] == [0, 300, 600, 900]
    np.testing.assert_array_equal(sp.vstack([c for _, c in chunks]).toarray(), x.toarray())


def test_counts_or_normalized(tmp_path: Path) -> None:
    counts = sp.csr_matrix(np.array([[0, 3, 1], [2, 0, 0]], dtype=np.float32))
    ad.AnnData(counts).write_h5ad(tmp_path / "c.h5ad")
    ad.AnnData(counts.multiply(0.37).tocsr()).write_h5ad(tmp_path / "n.h5ad")
    assert H5adSource(tmp_path / "c.h5ad", "c").x_is_counts()
    assert not H5adSource(tmp_path / "n.h5ad", "n").x_is_counts()


def test_obs_is_read_without_x(two_labs: list[Path]) -> None:
    obs = H5adSource(two_labs[0], "lab_a").read_obs()
    assert obs["cell_type"].value_counts()["pDC"] == 8


def one_line(err: pytest.ExceptionInfo[InputError], path: Path) -> str:
    text = str(err.value)
    assert "\n" not in text and str(path) in text
    return text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        open_sources([tmp_path / "nope.h5ad"])
    assert "no such file or folder" in one_line(err, tmp_path / "nope.h5ad")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.h5ad").touch()
    with pytest.raises(InputError) as err:
        open_sources([tmp_path / "empty.h5ad"])
    assert "the file is empty" in one_line(err, tmp_path / "empty.h5ad")


def test_not_an_h5ad(tmp_path: Path) -> None:
    (tmp_path / "text.h5ad").write_text("cell,gene\n1,2\n")
    with pytest.raises(InputError) as err:
        open_sources([tmp_path / "text.h5ad"])
    assert "cannot read as h5ad" in one_line(err, tmp_path / "text.h5ad")


def test_truncated_h5ad(two_labs: list[Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.h5ad"
    data = two_labs[0].read_bytes()
    cut.write_bytes(data[: len(data) // 2])

    def read_all() -> None:
        for source in open_sources([cut]):
            list(source.iter_x())

    with pytest.raises(InputError) as err:
        read_all()
    assert "cannot read" in one_line(err, cut)


def test_duplicated_obs_names(tmp_path: Path) -> None:
    path = tmp_path / "dup.h5ad"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # anndata's own note on the duplicates
        adata = ad.AnnData(np.ones((3, 2), dtype=np.float32))
        adata.obs_names = ["c1", "c2", "c1"]
        adata.write_h5ad(path)
    with pytest.raises(InputError) as err:
        open_sources([path])
    assert "obs names are not unique ('c1' appears 2 times)" in one_line(err, path)


def test_no_cells(tmp_path: Path) -> None:
    path = tmp_path / "none.h5ad"
    ad.AnnData(np.zeros((0, 4), dtype=np.float32)).write_h5ad(path)
    with pytest.raises(InputError) as err:
        open_sources([path])
    assert "has no cells" in one_line(err, path)


def test_unknown_suffix_and_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "cells.csv").write_text("a\n")
    with pytest.raises(InputError, match="not a known source format"):
        open_sources([tmp_path / "cells.csv"])
    with pytest.raises(InputError, match="no sources in this folder"):
        open_sources([tmp_path])


def test_missing_obsm_key_names_what_is_there(two_labs: list[Path]) -> None:
    with pytest.raises(InputError) as err:
        H5adSource(two_labs[0], "lab_a").read_obsm("X_scVI")
    assert "obsm has no 'X_scVI' (has: no obsm entries)" in one_line(err, two_labs[0])


@pytest.mark.parametrize("layout", ["csr", "csc", "dense"])
def test_read_rows_returns_exactly_those_rows(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(3)
    x = sp.random(3000, 30, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    stored = {"csr": x, "csc": x.tocsc(), "dense": x.toarray()}[layout]
    ad.AnnData(stored).write_h5ad(tmp_path / "x.h5ad")
    source = H5adSource(tmp_path / "x.h5ad", "x")
    # scattered rows, runs of neighbours, the first and the last row
    rows = np.unique(np.r_[0, rng.choice(3000, 40, replace=False), np.arange(500, 540), 2999])
    got = source.read_rows(rows)
    assert got.shape == (len(rows), 30)
    np.testing.assert_array_equal(got.toarray(), x[rows].toarray())
    assert source.read_rows(np.zeros(0, dtype=np.int64)).shape == (0, 30)


def test_prefetched_yields_in_order_and_raises_where_read() -> None:
    from scurate._data.sources import prefetched

    assert list(prefetched(iter(range(50)))) == list(range(50))

    def failing() -> Iterator[int]:
        yield 1
        raise OSError("disk went away")

    reader = prefetched(failing())
    assert next(reader) == 1
    with pytest.raises(OSError, match="disk went away"):
        next(reader)
    stopped = prefetched(iter(range(10_000)))
    assert next(stopped) == 0
    stopped.close()  # leaving early ends the reader thread

"""``index build`` writes only where it may: a new path, an empty folder or an earlier index;
it refuses a folder of the user's and a symbolic link, and never removes a file it did not
write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scurate
from scurate._compute.reference import FILES, MARKER, _clear, load_reference
from scurate.cli import app
from scurate.errors import InputError
from typer.testing import CliRunner

from conftest import TYPES, make_adata, write_h5ad


@pytest.fixture
def corpus(tmp_path: Path, programs: np.ndarray) -> Path:
    rng = np.random.default_rng(5)
    cells = make_adata(rng, programs, TYPES, [40, 0, 0, 0, 0], prefix="c")
    cells.obsm["X_emb"] = rng.normal(size=(cells.n_obs, 4)).astype(np.float32)
    return write_h5ad(cells, tmp_path / "corpus.h5ad")


def build(corpus: Path, out: Path) -> dict[str, object]:
    return scurate.build_index([corpus], out=out, obsm_key="X_emb")


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_earlier_index_or_an_empty_folder_is_written_over(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "corpus.idx"
    out.mkdir()  # empty: scurate may write there
    build(corpus, out)
    assert {p.name for p in out.iterdir()} == {MARKER, "index.faiss", "cells.parquet"}
    (out / ".index.faiss.partial").write_bytes(b"what an interrupted write left")
    meta = json.loads((out / MARKER).read_text())
    meta["note"] = "the earlier run"
    (out / MARKER).write_text(json.dumps(meta))
    build(corpus, out)
    assert "note" not in json.loads((out / MARKER).read_text()), "replaced by the new index"
    assert {p.name for p in out.iterdir()} == {MARKER, "index.faiss", "cells.parquet"}
    assert load_reference(out).index.ntotal == 40
    assert not list(tmp_path.glob(".*.partial")), "no temporary folder left beside it"


def test_a_folder_holding_other_files_is_refused_and_nothing_is_removed(
    tmp_path: Path, corpus: Path
) -> None:
    out = tmp_path / "corpus.idx"
    build(corpus, out)
    (out / "notes.txt").write_text("my notes about this corpus")
    before = contents(out)
    with pytest.raises(InputError, match=r"corpus.idx': exists and is not a scurate index") as err:
        build(corpus, out)
    assert str(err.value).startswith(f"out='{out}': ") and "notes.txt" in str(err.value)
    assert contents(out) == before, "the user's file and the earlier index are both kept"


def test_a_folder_named_like_an_index_file_is_not_ours(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "corpus.idx"
    build(corpus, out)
    (out / "index.faiss").unlink()
    (out / "index.faiss").mkdir()  # a folder where scurate writes a file: the user's
    (out / "index.faiss" / "data.bin").write_bytes(b"\x01\x02")
    with pytest.raises(InputError, match=r"it holds index\.faiss, which index build did not"):
        build(corpus, out)
    assert (out / "index.faiss" / "data.bin").read_bytes() == b"\x01\x02"


def test_a_symbolic_link_is_refused_in_one_line(tmp_path: Path, corpus: Path) -> None:
    real = tmp_path / "real.idx"
    build(corpus, real)
    before = contents(real)
    link = tmp_path / "link.idx"
    link.symlink_to(real, target_is_directory=True)
    with pytest.raises(InputError, match=r"^out='.*link\.idx': is a symbolic link; give"):
        build(corpus, link)
    result = CliRunner().invoke(app, ["index", "build", str(corpus), "-o", str(link)])
    assert result.exit_code == 1, result.output
    assert (
        result.stderr
        == f"scurate: error: --out {link}: is a symbolic link; give the folder itself\n"
    )
    dangling = tmp_path / "dangling.idx"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError, match="is a symbolic link"):
        build(corpus, dangling)
    assert link.is_symlink() and dangling.is_symlink() and not (tmp_path / "nowhere").exists()
    assert contents(real) == before


def test_a_file_that_appears_while_the_index_is_written_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "corpus.idx"
    out.mkdir()
    for name in FILES:
        (out / name).write_bytes(b"an earlier index")
    (out / "arrived.txt").write_text("written by the user meanwhile")
    with pytest.raises(InputError, match=r"cannot replace the index there .*arrived\.txt"):
        _clear(out)
    assert [p.name for p in out.iterdir()] == ["arrived.txt"]
    assert (out / "arrived.txt").read_text() == "written by the user meanwhile"

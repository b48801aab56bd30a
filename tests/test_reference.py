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


def _damage_json(folder: Path, change: object) -> None:
    meta = json.loads((folder / MARKER).read_text())
    (folder / MARKER).write_text(json.dumps(change(meta) if callable(change) else change))


def _damage_model(folder: Path, **arrays: np.ndarray) -> None:
    with np.load(folder / "pca.npz") as z:
        parts = {k: z[k] for k in z.files}
    parts.update(arrays)
    np.savez(folder / "pca.npz", **parts)


def test_a_damaged_index_is_one_line_naming_the_part(tmp_path: Path, corpus: Path) -> None:
    pca = tmp_path / "pca.idx"
    scurate.build_index([corpus], out=pca)
    with np.load(pca / "pca.npz") as z:
        n_var, n_dims = z["loadings"].shape
        n_genes = len(z["genes"])
    cases = [
        (lambda f: _damage_json(f, [1, 2]), f"{MARKER} is not a JSON object"),
        (lambda f: _damage_json(f, lambda m: {**m, "n_dims": 0}), "n_dims=0, not a positive"),
        (
            lambda f: _damage_json(f, lambda m: {**m, "n_dims": n_dims + 1}),
            f"index.faiss has {n_dims} dimensions but {MARKER} says {n_dims + 1}",
        ),
        (
            lambda f: _damage_model(f, loadings=np.zeros((n_var - 1, n_dims), np.float32)),
            f"loadings of shape ({n_var - 1}, {n_dims}), expected ({n_var}, {n_dims})",
        ),
        (
            lambda f: _damage_model(f, variable=np.arange(n_var) + n_genes),
            f"variable genes are not distinct positions in its {n_genes} genes",
        ),
        (
            lambda f: _damage_model(f, center=np.full(n_dims, np.nan, np.float32)),
            "pca.npz holds NaN or inf",
        ),
        (
            lambda f: (f / "pca.npz").write_bytes(b"PK\x03\x04 not a zip after all"),
            "cannot read the scurate index (BadZipFile",
        ),
    ]
    for k, (damage, text) in enumerate(cases):
        folder = tmp_path / f"damaged-{k}"
        folder.mkdir()
        for name in FILES:
            if (pca / name).exists():
                (folder / name).write_bytes((pca / name).read_bytes())
        damage(folder)
        with pytest.raises(InputError) as err:
            load_reference(folder)
        assert str(err.value).startswith(f"{folder}: ") and text in str(err.value), err.value
        result = CliRunner().invoke(
            app,
            [
                "select",
                str(corpus),
                "-b",
                "5",
                "-o",
                str(tmp_path / f"o{k}"),
                "--reference",
                str(folder),
            ],
        )
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
        assert text in result.stderr

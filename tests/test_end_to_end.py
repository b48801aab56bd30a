"""`scurate select --example` end to end, checked against the facts planted in the example."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import polars as pl
from scurate._data.example import example_dir, example_sources
from scurate._data.manifest import read_manifest
from scurate.cli import app
from typer.testing import CliRunner

PLANTED = json.loads((example_dir() / "planted.json").read_text())


def labels() -> dict[str, np.ndarray]:
    """Each example file's cell-type labels, from the column that file uses for them."""
    out = {}
    for path in example_sources():
        column = PLANTED["files"][path.name]["label_column"]
        out[path.stem] = ad.read_h5ad(path, backed="r").obs[column].astype(str).to_numpy()
    return out


def test_example_select_covers_every_type_early(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["select", "--example", "-b", "200", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    manifest = read_manifest(out / "manifest.parquet")
    assert manifest.height == sum(f["n_obs"] for f in PLANTED["files"].values())
    chosen = manifest.filter(pl.col("selected")).sort("selection_rank")
    by_file = labels()
    ranked = [by_file[d][r] for d, r in chosen.select("dataset_id", "row").iter_rows()]
    all_types = set(np.concatenate(list(by_file.values())))
    # the default (facility-density) ranks representatives and gaps in turn: every type,
    # the 8 rare pDCs included, within the first half of the budget
    assert set(ranked[:100]) == all_types, "every type, the 8 rare pDCs included"
    report = json.loads((out / "report.json").read_text())
    embedding = report["embedding"]
    assert embedding["gene_id_kind"] == "symbol"
    assert embedding["n_genes_shared"] == PLANTED["genes"]["shared_by_symbol_all_files"]
    assert embedding["genes_found_in"]["lab_c"] == "var['feature_name']"
    assert embedding["genes_found_in"]["lab_b"] == "var['gene_symbols']"
    assert [d["dataset_id"] for d in report["datasets"]] == ["lab_a", "lab_b", "lab_c", "lab_d"]


def test_copies_sit_on_their_originals_in_the_embedding() -> None:
    """The planted re-deposited cells embed onto their lab_a originals: the embedding is on
    one gene space whatever each file's identifiers, layout and dtype."""
    import scurate
    from scurate._compute.embed import pca_embedding
    from scurate._data.sources import open_sources

    sources = open_sources(example_sources())
    emb = pca_embedding(sources, rng=np.random.default_rng(0)).values
    offset = {
        s.dataset_id: o
        for s, o in zip(sources, np.cumsum([0] + [s.n_obs for s in sources])[:-1], strict=True)
    }
    pairs = PLANTED["exact_copies"]["pairs"]
    a = emb[[offset["lab_a"] + p["lab_a_row"] for p in pairs]]
    c = emb[[offset["lab_c"] + p["lab_c_row"] for p in pairs]]
    np.testing.assert_allclose(a, c, atol=1e-4)
    # with every cell but the last selected, the radius is the last cell's nearest distance
    expected = np.sqrt(((emb[:-1].astype(np.float64) - emb[-1]) ** 2).sum(axis=1).min())
    np.testing.assert_allclose(scurate.covering_radius(emb, np.arange(len(emb) - 1)), expected)

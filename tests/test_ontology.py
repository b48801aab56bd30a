"""Free text to ontology terms: exact after normalization, with the dataset's context, never
fuzzy; the rest listed with candidates."""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from scurate._data import ontology as onto

from scurate_harmonizers.ontology import match_text

PANCREAS = "UBERON:0001264"


def tissue(term_id: str) -> onto.Term:
    term = onto.term(term_id)
    assert term is not None
    return term


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("B_cells", "b cell"),
        ("B-Cell", "b cell"),
        ("CD4+ T cells", "cd4 positive t cell"),
        ("  Dendritic   cells ", "dendritic cell"),
        ("alpha retinal ganglion cell (Mmus)", "alpha retinal ganglion cell"),
        ("Lungs", "lung"),
        ("pancreas", "pancrea"),  # the same on both sides: labels are normalized alike
        ("Mus musculus", "mus musculus"),
    ],
)
def test_normalize(text: str, normal: str) -> None:
    assert onto.normalize(text) == normal


@pytest.mark.parametrize(
    ("value", "term_id", "how"),
    [
        ("B lymphocytes", "CL:0000236", "exact"),  # a synonym, plural
        ("B_cell", "CL:0000236", "exact"),
        ("T-cell", "CL:0000084", "exact"),
        ("macrophages", "CL:0000235", "exact"),
        ("endothelial", "CL:0000115", "value + 'cell'"),
        ("NK", "CL:0000623", "value + 'cell' (synonym)"),
        ("pDC", "CL:0000784", "exact"),
    ],
)
def test_cell_type_synonyms_and_shorthands(value: str, term_id: str, how: str) -> None:
    found = match_text("cell_type", value)
    assert (found.term_id, found.how) == (term_id, how)


def test_alpha_is_the_pancreatic_a_cell_in_a_pancreas_and_nothing_without_a_tissue() -> None:
    pancreas = tissue(PANCREAS)
    found = match_text("cell_type", "alpha", tissue=pancreas, organism="NCBITaxon:10090")
    assert found.term_id == "CL:0000171", "pancreatic A cell, synonym 'pancreatic alpha cell'"
    alone = match_text("cell_type", "alpha")
    assert alone.term_id is None, "'alpha cell' is only a synonym of a mouse retinal cell"
    assert "CL:0004117" in alone.candidates
    for value, term_id in [
        ("beta", "CL:0000169"),
        ("delta", "CL:0000173"),
        ("ductal", "CL:0002079"),
    ]:
        assert match_text("cell_type", value, tissue=pancreas).term_id == term_id


def test_no_exact_match_stays_text_with_candidates() -> None:
    found = match_text("cell_type", "quiescent_stellate", tissue=tissue(PANCREAS))
    assert found.term_id is None and found.how == "no exact match"
    assert found.candidates, "terms holding its words are offered"
    assert match_text("cell_type", "immune_other").term_id is None


def test_ambiguity_is_resolved_only_by_a_unique_label() -> None:
    found = match_text("tissue", "Lungs")
    assert (found.term_id, found.how) == ("UBERON:0002048", "exact label")


@pytest.mark.parametrize(
    ("fld", "value", "term_id"),
    [
        ("assay", "10x 3' v3", "EFO:0009922"),
        ("assay", "Drop-seq", "EFO:0008722"),
        ("sex", "F", "PATO:0000383"),
        ("sex", "Male", "PATO:0000384"),
        ("disease", "healthy", "PATO:0000461"),
        ("disease", "type 2 diabetes mellitus", "MONDO:0005148"),
        ("cell_line", "A549", "CVCL_0023"),
        ("cell_line", "H1975", "CVCL_1511"),
    ],
)
def test_other_fields(fld: str, value: str, term_id: str) -> None:
    assert match_text(fld, value).term_id == term_id


def test_organism_common_name_is_the_model_organism() -> None:
    found = match_text("organism", "mouse")
    assert found.term_id == "NCBITaxon:10090", "not the genus Mus, whose synonym is also mouse"
    assert match_text("organism", "Homo sapiens").term_id == "NCBITaxon:9606"


def test_development_stage_uses_the_organisms_ontology() -> None:
    human = match_text("development_stage", "adult stage", organism="NCBITaxon:9606")
    mouse = match_text("development_stage", "adult stage", organism="NCBITaxon:10090")
    assert human.term_id is not None and human.term_id.startswith("HsapDv:")
    assert (mouse.term_id, mouse.how) == ("MmusDv:0000110", "replacement of a deprecated term")


def test_an_assay_is_an_efo_assay_not_an_efo_cell_line() -> None:
    assert match_text("assay", "A549").term_id is None, "EFO:0001086 is EFO's A549 cell line"
    with pytest.raises(ValueError, match=r"'EFO:0001086' \(A549\) is not an assay"):
        onto.check_term_id("assay", "EFO:0001086")


def test_check_term_id_names_the_replacement() -> None:
    with pytest.raises(ValueError, match=r"replaced by CL:0000000 \(cell\)"):
        onto.check_term_id("cell_type", "CL:0000003")
    assert onto.check_term_id("cell_type", "unknown") is None
    term = onto.check_term_id("cell_line", "CVCL_0023")
    assert term is not None and term.label == "A-549"


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty ontology cache folder of this test's own."""
    monkeypatch.setenv("SCURATE_CACHE_DIR", str(tmp_path))
    onto.load.cache_clear()
    yield tmp_path / "ontologies"
    onto.load.cache_clear()  # the next tests use the default cache again


def cache_file(folder: Path, name: str) -> Path:
    (found,) = folder.glob(f"{name}-*.sqlite")
    return found


def sql(path: Path, statement: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def test_the_cache_is_built_once_and_rebuilt_when_unreadable(
    own_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pato = onto.load("PATO")
    cached = cache_file(own_cache, "PATO")
    assert pato.lookup("female") == ("PATO:0000383",)
    cached.write_bytes(b"not a database")
    onto.load.cache_clear()
    with caplog.at_level(logging.WARNING, logger=onto.__name__):
        again = onto.load("PATO")
    assert again.lookup("female") == ("PATO:0000383",)
    assert f"ontology cache {cached} unreadable" in caplog.text
    assert cached.read_bytes().startswith(b"SQLite format 3\x00"), "rewritten as SQLite"


class _RunsCode:
    """What a hostile user could leave in the cache folder: a pickle that runs a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.mkdir, (str(self.marker),))


def test_a_pickle_in_the_cache_is_never_loaded(own_cache: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = pickle.dumps(_RunsCode(marker))
    own_cache.mkdir(parents=True)
    version, guide = onto.release("PATO"), onto.package_version()
    for fmt in range(1, onto.CACHE_FORMAT + 1):  # where scurate <= 0.4 kept its pickles
        (own_cache / f"PATO-{version}-guide{guide}-f{fmt}.pickle").write_bytes(payload)
    assert onto.load("PATO").lookup("female") == ("PATO:0000383",)
    assert not marker.exists(), "a pickle from the cache folder was loaded"
    pickle.loads(payload)  # the payload is real: loading it does run the command
    assert marker.is_dir()


def test_a_cache_of_another_format_is_ignored_and_rebuilt(
    own_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    onto.load("PATO")
    cached = cache_file(own_cache, "PATO")
    sql(cached, "UPDATE meta SET value = '4' WHERE key = 'format'")
    onto.load.cache_clear()
    with caplog.at_level(logging.WARNING, logger=onto.__name__):
        assert onto.load("PATO").lookup("male") == ("PATO:0000384",)
    assert "rebuilding" in caplog.text
    conn = sqlite3.connect(cached)
    try:
        (fmt,) = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    finally:
        conn.close()
    assert fmt == str(onto.CACHE_FORMAT)


def test_a_damaged_term_is_rebuilt_with_a_warning(
    own_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = onto.load("CL").get("CL:0000236")
    assert before is not None and before.ancestors
    sql(cache_file(own_cache, "CL"), "UPDATE terms SET ancestors = '[[' WHERE id = 'CL:0000236'")
    onto.load.cache_clear()
    with caplog.at_level(logging.WARNING, logger=onto.__name__):
        assert onto.load("CL").get("CL:0000236") == before
    assert "rebuilding" in caplog.text
    onto.load.cache_clear()
    assert onto.load("CL").get("CL:0000236") == before, "the file was rewritten"


def test_a_queried_cache_is_checked_and_rebuilt_too(
    own_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(onto, "SQLITE_ABOVE", 100)  # PATO queried on disk, as NCBITaxon is
    pato = onto.load("PATO")
    assert pato.db is not None and pato.lookup("female") == ("PATO:0000383",)
    female = pato.get("PATO:0000383")
    cached = cache_file(own_cache, "PATO")
    sql(cached, "UPDATE terms SET synonyms = '{' WHERE id = 'PATO:0000383'")
    onto.load.cache_clear()
    with caplog.at_level(logging.WARNING, logger=onto.__name__):
        assert onto.load("PATO").get("PATO:0000383") == female
    assert "rebuilding" in caplog.text
    cached.write_bytes(b"\x00" * 4096)
    onto.load.cache_clear()
    assert onto.load("PATO").lookup("female", labels_only=True) == ("PATO:0000383",)

"""The harmonizers on obs frames built here: CELLxGENE ids, column aliases, mapping files and
free text to ontology terms, and the one-line errors on bad metadata."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from scurate._data.harmonization import (
    OUTPUT_COLUMNS,
    harmonize_obs,
    parse_set,
    read_metadata_map,
)
from scurate._plugins.registry import discover
from scurate.errors import InputError


@pytest.fixture(scope="module")
def plugins():  # type: ignore[no-untyped-def]
    return discover()


def run(obs: pl.DataFrame, plugins, **kw):  # type: ignore[no-untyped-def]
    return harmonize_obs(
        obs, kw.pop("dataset_id", "lab_x"), path=Path("lab_x.h5ad"), plugins=plugins, **kw
    )


def write_map(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "map.toml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- cellxgene


def test_cellxgene_ids_are_taken_as_they_are_with_labels_from_the_ontology(plugins) -> None:
    obs = pl.DataFrame(
        {
            "cell_type_ontology_term_id": ["CL:0000236", "CL:0000084", "unknown"],
            "cell_type": ["B", "my own T label", "?"],  # the source's labels: ids win
            "tissue_ontology_term_id": ["UBERON:0002048"] * 3,
            "sex_ontology_term_id": ["PATO:0000383", "PATO:0000384", "unknown"],
        }
    )
    result = run(obs, plugins)
    frame = result.frame
    assert frame.columns == list(OUTPUT_COLUMNS)
    assert frame["cell_type"].to_list() == ["B cell", "T cell", None]
    assert frame["cell_type_ontology_term_id"].to_list() == ["CL:0000236", "CL:0000084", None]
    assert frame["tissue"].to_list() == ["lung"] * 3
    assert frame["sex"].to_list() == ["female", "male", None]
    source = result.records["cell_type"].sources[0]
    assert source["harmonizer"] == "cellxgene" and source["cells"] == 2


def test_uns_organism_id_fills_every_cell(plugins) -> None:
    obs = pl.DataFrame({"x": [1, 2]})
    result = run(obs, plugins, uns={"organism_ontology_term_id": "NCBITaxon:9606"})
    assert result.frame["organism"].to_list() == ["Homo sapiens"] * 2


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "cell_type_ontology_term_id",
            "UBERON:0002048",
            "lab_x.h5ad: obs column 'cell_type_ontology_term_id': 'UBERON:0002048' is a UBERON "
            "term; cell_type takes CL terms",
        ),
        (
            "cell_type_ontology_term_id",
            "CL:0000003",
            "lab_x.h5ad: obs column 'cell_type_ontology_term_id': 'CL:0000003' (obsolete native "
            "cell) is deprecated in CL v2026-03-26; replaced by CL:0000000 (cell)",
        ),
        (
            "cell_type_ontology_term_id",
            "CL0000236",
            "lab_x.h5ad: obs column 'cell_type_ontology_term_id': 'CL0000236' is not an "
            "ontology term id (expected the form CL:0000001)",
        ),
        (
            "cell_type_ontology_term_id",
            "CL_0000236",
            "lab_x.h5ad: obs column 'cell_type_ontology_term_id': 'CL_0000236' is malformed "
            "(write CL:0000236)",
        ),
        (
            "tissue_ontology_term_id",
            "UBERON:9999999",
            "lab_x.h5ad: obs column 'tissue_ontology_term_id': 'UBERON:9999999' is not a term "
            "of UBERON v2026-04-01",
        ),
        (
            "sex_ontology_term_id",
            "PATO:0000001",
            "lab_x.h5ad: obs column 'sex_ontology_term_id': 'PATO:0000001' (quality) is not one "
            "of the PATO terms sex takes: PATO:0000383, PATO:0000384, PATO:0001340",
        ),
    ],
)
def test_a_bad_id_is_one_line_naming_file_and_column(
    plugins, column: str, value: str, message: str
) -> None:
    obs = pl.DataFrame({column: [value, value]})
    with pytest.raises(InputError) as err:
        run(obs, plugins)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_deprecated_id_without_replacement_says_what_to_consider(plugins) -> None:
    obs = pl.DataFrame({"cell_type_ontology_term_id": ["CL:0000004"]})
    with pytest.raises(InputError, match=r"is deprecated in CL .*; consider CL:0000000, "):
        run(obs, plugins)


# ---------------------------------------------------------------- columns


def test_alias_columns_are_found_and_combined_row_by_row(plugins) -> None:
    # a merged dataset: one label column filled for some files, another for all
    obs = pl.DataFrame(
        {
            "CellType": ["B cells", "T-cell", None, "B_cell"],
            "cell_line_demuxlet": ["A549", "A549", "HCC827", "HCC827"],
            "cell_line": [None, None, "HCC827", "A549"],  # disagrees on the last cell
            "Gender": ["F", "M", "female", None],
            "batch": ["x", "y", "x", "y"],
        }
    )
    result = run(obs, plugins)
    frame = result.frame
    assert frame["cell_type"].to_list() == ["B cell", "T cell", None, "B cell"]
    assert frame["cell_type_ontology_term_id"].to_list() == [
        "CL:0000236",
        "CL:0000084",
        None,
        "CL:0000236",
    ]
    assert frame["cell_line_ontology_term_id"].to_list() == [
        "CVCL_0023",
        "CVCL_0023",
        "CVCL_2063",
        "CVCL_2063",
    ], "the complete column first"
    cell_line = result.records["cell_line"]
    assert [s["name"] for s in cell_line.sources] == ["cell_line_demuxlet"]
    assert cell_line.notes == [
        "columns 'cell_line_demuxlet' and 'cell_line' disagree on 1 cells; "
        "'cell_line_demuxlet' kept"
    ]
    assert frame["sex"].to_list() == ["female", "male", "female", None]
    assert frame["sex_ontology_term_id"].to_list()[:3] == [
        "PATO:0000383",
        "PATO:0000384",
        "PATO:0000383",
    ]


def test_label_column_missing_in_some_files_is_filled_from_another(plugins) -> None:
    obs = pl.DataFrame(
        {"cell_line": ["H1975", None, None], "cell_line_name": [None, "H2228", "NCI-H838"]}
    )
    result = run(obs, plugins)
    assert result.frame["cell_line_ontology_term_id"].to_list() == [
        "CVCL_1511",
        "CVCL_1543",
        "CVCL_1594",
    ]
    assert [(s["name"], s["cells"]) for s in result.records["cell_line"].sources] == [
        ("cell_line_name", 2),
        ("cell_line", 1),
    ]


def test_mapping_file_names_columns_and_constants(plugins, tmp_path: Path) -> None:
    path = write_map(
        tmp_path,
        """
        [[dataset]]
        match = "lab_*"
        columns = { cell_type = "assigned_cluster", donor_id = "source_file" }
        set = { tissue = "pancreas", organism = "NCBITaxon:10090", assay = "inDrop", lab = "Y" }

        [[dataset]]
        match = "other"
        set = { tissue = "lung" }
        """,
    )
    entries = read_metadata_map(path)
    obs = pl.DataFrame(
        {
            "assigned_cluster": ["alpha", "beta", "immune_other"],
            "source_file": ["m1", "m1", "m2"],
            "cell_type": ["x", "y", "z"],  # a lab's own column: the mapping file wins
        }
    )
    result = run(obs, plugins, entries=entries)
    frame = result.frame
    assert frame["tissue_ontology_term_id"].to_list() == ["UBERON:0001264"] * 3
    assert frame["organism"].to_list() == ["Mus musculus"] * 3
    assert frame["assay_ontology_term_id"].to_list() == ["EFO:0008780"] * 3
    assert frame["donor_id"].to_list() == ["m1", "m1", "m2"]
    assert frame["lab"].to_list() == ["Y"] * 3
    assert frame["cell_type"].to_list() == [
        "pancreatic A cell",
        "type B pancreatic cell",
        "immune_other",
    ]
    assert frame["cell_type_ontology_term_id"].to_list() == ["CL:0000171", "CL:0000169", None]
    record = result.records["cell_type"]
    assert record.sources[0]["name"] == "assigned_cluster"
    assert record.mapped["alpha"]["how"] == "with tissue 'pancreas'"
    assert "immune_other" in record.unmapped


def test_set_constants_apply_to_every_dataset(plugins) -> None:
    entry = parse_set(["tissue=pancreas", "disease=healthy"])
    assert entry is not None
    result = run(pl.DataFrame({"x": [1]}), plugins, entries=[entry])
    assert result.frame.row(0, named=True)["disease_ontology_term_id"] == "PATO:0000461"
    with pytest.raises(InputError, match=r"^set_fields='tissue': expected field=value"):
        parse_set(["tissue"])
    unknown = r"^`set_fields`: unknown field 'celltype' \(fields: organism"
    with pytest.raises(InputError, match=unknown):
        parse_set(["celltype=B"])


def test_mapping_file_naming_a_missing_column_is_one_line(plugins, tmp_path: Path) -> None:
    path = write_map(
        tmp_path, '[[dataset]]\nmatch = "*"\ncolumns = { cell_type = "celltype_fine" }\n'
    )
    obs = pl.DataFrame({"cluster": ["a"], "cell_type": ["b"]})
    with pytest.raises(InputError) as err:
        run(obs, plugins, entries=read_metadata_map(path))
    assert str(err.value) == (
        f"{path}: column 'celltype_fine' (for cell_type) is not in the obs of lab_x.h5ad "
        "(it has: cluster, cell_type)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[dataset]]\nmatch = "*"\ncolumns = { celltype = "x" }\n',
            "[[dataset]] match = '*', columns: unknown field 'celltype' (fields: organism, ",
        ),
        ('[[dataset]]\ncolumns = { cell_type = "x" }\n', "[[dataset]] #1: needs match = "),
        ("[[dataset]\n", "not valid TOML"),
        ('[datasets]\nmatch = "*"\n', "unknown table 'datasets' (write [[dataset]] entries)"),
        (
            '[[dataset]]\nmatch = "*"\ncolumns = { tissue = "t" }\nset = { tissue = "lung" }\n',
            "'tissue' is both a column and a constant",
        ),
        ('[[dataset]]\nmatch = "*"\nset = { tissue = 3.5 }\n', None),
    ],
)
def test_a_bad_mapping_file_is_one_line_naming_it(
    tmp_path: Path, text: str, message: str | None
) -> None:
    path = write_map(tmp_path, text)
    if message is None:  # a number is a constant like any other
        assert read_metadata_map(path)[0].constants == {"tissue": "3.5"}
        return
    with pytest.raises(InputError) as err:
        read_metadata_map(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_mapped_id_constant_from_the_wrong_ontology_names_the_file(
    plugins, tmp_path: Path
) -> None:
    path = write_map(
        tmp_path, '[[dataset]]\nmatch = "*"\nset = { tissue_ontology_term_id = "EFO:0008780" }\n'
    )
    with pytest.raises(InputError) as err:
        run(pl.DataFrame({"x": [1]}), plugins, entries=read_metadata_map(path))
    assert str(err.value) == (
        f"{path}: tissue_ontology_term_id = 'EFO:0008780': 'EFO:0008780' is a EFO term; "
        "tissue takes UBERON or CL terms"
    )


def test_a_free_text_value_written_as_a_bad_id_is_one_line(plugins) -> None:
    obs = pl.DataFrame({"cell_type": ["CL:0000003"]})
    with pytest.raises(InputError, match=r"^lab_x.h5ad: cell_type value 'CL:0000003' \(obsolete"):
        run(obs, plugins)


def test_a_missing_mapping_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^metadata_map='.*nope.toml': no such file$"):
        read_metadata_map(tmp_path / "nope.toml")


def test_a_plugin_harmonizer_runs_between_columns_and_ontology(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from scurate._data.harmonization import ordered
    from scurate.errors import PluginError

    from plugin_helpers import BY_BATCH, install_plugin

    install_plugin(monkeypatch, tmp_path / "site", "by-batch", BY_BATCH)
    found = discover()
    names = [h.name for h in ordered(found.registries["harmonizers"])]
    assert names == ["cellxgene", "columns", "lab-from-batch", "zz-explodes", "ontology"]
    obs = pl.DataFrame({"batch": ["smith_1", "jones_2"], "lab": ["given", None]})
    with pytest.raises(PluginError) as err:
        harmonize_obs(obs, "d", path=Path("d.h5ad"), plugins=found)
    assert str(err.value) == (
        "harmonizer 'zz-explodes' (plugin 'by-batch') failed on d.h5ad: "
        "KeyError: 'no such column: donor'"
    )
    del found.registries["harmonizers"]["zz-explodes"]
    result = harmonize_obs(obs, "d", path=Path("d.h5ad"), plugins=found)
    assert result.frame["lab"].to_list() == ["given", "jones"], "columns filled it first"


def test_mapping_file_values_fix_what_no_rule_can_guess(plugins, tmp_path: Path) -> None:
    path = write_map(
        tmp_path,
        '[[dataset]]\nmatch = "*"\nset = { tissue = "pancreas" }\n'
        'values.cell_type = { gamma = "CL:0002275", quiescent_stellate = "CL:0002410" }\n',
    )
    obs = pl.DataFrame({"cell_type": ["gamma", "quiescent_stellate", "alpha", "immune_other"]})
    result = run(obs, plugins, entries=read_metadata_map(path))
    assert result.frame["cell_type_ontology_term_id"].to_list() == [
        "CL:0002275",
        "CL:0002410",
        "CL:0000171",
        None,
    ]
    assert result.records["cell_type"].mapped["gamma"]["how"] == "mapping file"
    bad = write_map(tmp_path, '[[dataset]]\nmatch = "*"\nvalues.cell_type = { x = "CL:0000003" }\n')
    with pytest.raises(InputError) as err:
        read_metadata_map(bad)
    assert str(err.value).startswith(
        f"{bad}: [[dataset]] match = '*', values.cell_type: 'x' = 'CL:0000003' (obsolete native "
        "cell) is deprecated"
    )
    wrong = write_map(tmp_path, '[[dataset]]\nmatch = "*"\nvalues.donor_id = { x = "y" }\n')
    with pytest.raises(InputError, match="'donor_id' is not a field with ontology terms"):
        read_metadata_map(wrong)


def test_a_donor_column_holding_the_chemistry_is_not_a_donor(plugins) -> None:
    obs = pl.DataFrame({"donor": ["10x 3' v2", "10x 3' v3"], "individual": ["d1", "d2"]})
    result = run(obs, plugins)
    assert result.frame["donor_id"].to_list() == ["d1", "d2"]
    assert result.records["donor_id"].notes == [
        "column 'donor' holds assay names (10x 3' v2, 10x 3' v3), not donor_id: not used"
    ]


def test_a_cell_type_is_read_in_its_own_cells_tissue(plugins) -> None:
    obs = pl.DataFrame(
        {"tissue": ["pancreas", "pancreas", "retina"], "cell_type": ["alpha", "alpha", "alpha"]}
    )
    result = run(obs, plugins)
    assert result.frame["cell_type_ontology_term_id"].to_list() == [
        "CL:0000171",
        "CL:0000171",
        None,
    ]
    record = result.records["cell_type"]
    assert record.mapped["alpha (in pancreas)"]["cells"] == 2
    assert "CL:0004117" in [
        c["term_id"] for c in record.unmapped["alpha (in retina)"]["candidates"]
    ]


def test_obs_columns_whose_first_values_are_missing_are_strings(tmp_path: Path) -> None:
    """polars types an object array that starts with None as Object; such a column (a
    categorical or plain strings) must reach the harmonizers as strings, not fail them."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    from scurate._data.anndata_store import H5adSource
    from scurate._data.harmonization import harmonize, obs_frame

    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(
                [None, None, "T cell", "B cell"], categories=["T cell", "B cell", "?"]
            ),
            "note": np.array([None, "x", None, "y"], dtype=object),
        },
        index=[f"c{i}" for i in range(4)],
    )
    path = tmp_path / "gaps.h5ad"
    ad.AnnData(sp.csr_matrix(np.ones((4, 3), dtype=np.float32)), obs=obs).write_h5ad(path)
    frame = obs_frame(H5adSource(path, "gaps"))
    assert frame.schema["cell_type"] == pl.String and frame.schema["note"] == pl.String
    assert frame["cell_type"].to_list() == [None, None, "T cell", "B cell"]
    assert frame["note"].to_list() == [None, "x", None, "y"]
    result = harmonize([path])
    assert result.obs["cell_type"].to_list()[2:] == ["T cell", "B cell"]

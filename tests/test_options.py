"""The options objects, the one budget rule, errors in the library's and the CLI's voice,
progress lines, atomic outputs, and the CLI surface (--version, --example, help, -o)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import polars as pl
import pytest
import scurate
from scurate._bench.options import BenchOptions
from scurate._data.atomic import atomic, write_json
from scurate._engine import progress as progress_module
from scurate._engine.options import DEFAULT_POLICY, ScoreOptions, SelectOptions, check_budget
from scurate._engine.progress import LogProgress
from scurate.cli import app
from scurate.cli._errors import in_flags
from scurate.errors import OptionError
from typer.testing import CliRunner

runner = CliRunner()


def test_select_options_parse_what_a_user_types() -> None:
    opts = SelectOptions(
        budget=10,
        params=["k = 15", "first=central"],
        strata="tissue, cell_type",
        quota="min:2",
        reference="atlas.idx",
        set_fields=["tissue=lung"],
    )
    assert opts.params == {"k": "15", "first": "central"}
    assert opts.strata == ("tissue", "cell_type") and str(opts.quota) == "min:2"
    assert opts.reference == (Path("atlas.idx"),) and opts.set_fields == ("tissue=lung",)
    report = opts.to_report()
    assert report["quota"] == "min:2" and report["reference"] == ["atlas.idx"]
    json.dumps(report)  # every value is JSON
    assert SelectOptions(budget=5).to_report()["quota"] is None  # no strata: no quota


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"budget": 0}, r"^budget=0: must be at least 1$"),
        ({"budget": 5, "seed": -1}, r"^seed=-1: must be a whole number >= 0$"),
        ({"budget": 5, "near_dup_eps": -0.5}, r"^near_dup_eps=-0.5: must be a distance >= 0$"),
        ({"budget": 5, "dup_min_genes": 0}, r"^dup_min_genes=0: must be at least 1$"),
        ({"budget": 5, "quota": "equal"}, r"^quota='equal': needs `strata`"),
        ({"budget": 5, "params": ["oops"]}, r"^params='oops': expected key=value$"),
    ],
)
def test_bad_options_are_one_line_naming_the_parameter(given: dict, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        SelectOptions(**given)


def test_unknown_keyword_names_the_job_and_its_options() -> None:
    with pytest.raises(OptionError, match=r"^select\(\) has no option 'polcy' \(options: .*policy"):
        SelectOptions.of("select", budget=5, polcy="kcenter")
    with pytest.raises(OptionError, match=r"^select\(\) has no option 'polcy'"):
        scurate.select(["nowhere.h5ad"], 5, polcy="kcenter")


def test_options_from_cli_parameters_take_fields_and_defaults() -> None:
    params = {"budget": 7, "out": Path("o"), "as_json": True, "params": None, "seed": 3}
    opts = SelectOptions.from_params(params)
    assert (opts.budget, opts.seed, opts.params, opts.policy) == (7, 3, {}, DEFAULT_POLICY)
    assert DEFAULT_POLICY == "facility-density"
    assert ScoreOptions.from_params(params).seed == 3


def test_one_budget_rule() -> None:
    check_budget(3, 3)
    with pytest.raises(OptionError, match=r"^budget=4 is more than the 3 cells in the pool$"):
        check_budget(4, 3)
    with pytest.raises(OptionError, match=r"left after setting aside 2 duplicates"):
        check_budget(4, 3, set_aside=2)
    with pytest.raises(OptionError, match=r"^budgets=9 is more than"):
        check_budget(9, 3, name="budgets")


def test_bench_options() -> None:
    opts = BenchOptions(
        holdout=" donor = D3 ",
        label="cell_type",
        budgets="0.1,50",
        policies="kcenter",
        params=["k=2", "kcenter:first=central"],
    )
    assert opts.holdout == "donor=D3" and opts.held_out == ("donor", "D3")
    assert [b.as_given() for b in opts.budgets] == [0.1, 50]
    assert opts.policies == ("random", "kcenter")
    assert opts.params == {"random": {"k": "2"}, "kcenter": {"k": "2", "first": "central"}}
    one = opts.selection("kcenter", 50, seed=4)
    assert (one.budget, one.policy, one.seed, one.params) == (
        50,
        "kcenter",
        4,
        opts.params["kcenter"],
    )
    with pytest.raises(OptionError, match=r"^seeds=0: must be at least 1$"):
        BenchOptions(holdout="a=b", label="c", seeds=0)


class _Param:
    def __init__(self, name: str, *opts: str, is_flag: bool = False) -> None:
        self.name, self.opts, self.is_flag = name, list(opts), is_flag


def test_the_cli_says_its_own_flags() -> None:
    params = [
        _Param("budget", "--budget", "-b"),
        _Param("params", "--param"),
        _Param("keep_duplicates", "--keep-duplicates", is_flag=True),
        _Param("strata", "--strata"),
        _Param("index_factory", "--index-factory"),
        _Param("sources"),
    ]
    said = [
        ("budget=5 is more than 4 (keep_duplicates=True keeps them)", None),
        ("params['first']='middle': expected 'random'", "--param first=middle: expected 'random'"),
        ("quota='equal': needs `strata`", "quota='equal': needs --strata"),
        ("index_factory='IVF x': FAISS cannot", "--index-factory 'IVF x': FAISS cannot"),
        ("a budget of 5 for the sources", "a budget of 5 for the sources"),
    ]
    assert (
        in_flags(said[0][0], params) == "--budget 5 is more than 4 (--keep-duplicates keeps them)"
    )
    for library, cli in said[1:]:
        assert in_flags(library, params) == cli


def test_log_progress_speaks_every_while_and_at_long_ends(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    progress = LogProgress(every=10, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="scurate.progress")
    for t, done in ((0, 0), (5, 10), (11, 20), (15, 30), (22, 40)):
        now[0] = t
        progress("embed", done, 100)
    now[0] = 30
    progress("embed", 100, 100)
    progress("select", 0, 5)
    progress("select", 5, 5)  # a short stage says nothing
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "embed: 20/100 (20 %, 11 s)",
        "embed: 40/100 (40 %, 22 s)",
        "embed: 100/100 (100 %, 30 s)",
    ]


def test_piped_cli_prints_progress_lines(
    monkeypatch: pytest.MonkeyPatch, example_out: Path
) -> None:
    monkeypatch.setattr(progress_module, "EVERY_S", 0.0)  # a line for every call
    result = runner.invoke(app, ["score", "--example", "-o", str(example_out)])
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("scurate: ") for line in lines), lines
    assert any(line.startswith("scurate: embed") for line in lines), lines
    again = ["score", "--example", "-o", str(example_out), "--json", "--overwrite"]
    quiet = runner.invoke(app, again)
    assert quiet.exit_code == 0 and quiet.stderr == "" and json.loads(quiet.stdout)


@pytest.fixture
def example_out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def test_atomic_outputs_exist_only_complete(tmp_path: Path) -> None:
    target = tmp_path / "report.json"

    def interrupted() -> None:
        with atomic(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted()
    assert [p.name for p in tmp_path.iterdir()] == [".report.json.partial"]  # never report.json
    write_json({"a": 1}, target)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    folder = tmp_path / "index"
    for n in (1, 2):
        with atomic(folder) as tmp:
            tmp.mkdir()
            (tmp / "part").write_text(str(n))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert (folder / "part").read_text() == "2"


def test_version_and_help_show_no_placeholders() -> None:
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.strip() == f"scurate {scurate.__version__}"
    for command in (
        ["select"],
        ["score"],
        ["bench"],
        ["harmonize"],
        ["materialize"],
        ["index", "build"],
        ["plugins"],
        [],
    ):
        text = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).stdout
        assert "<" not in text, (command, text)


@pytest.mark.parametrize("command", [["score"], ["harmonize"], ["index", "build"]])
def test_every_command_that_reads_sources_takes_the_example(
    command: list[str], tmp_path: Path
) -> None:
    out = tmp_path / ("obs.parquet" if command == ["harmonize"] else "out")
    result = runner.invoke(app, [*command, "--example", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    assert out.exists()


def test_materialize_takes_out_like_every_command(tmp_path: Path) -> None:
    selected = tmp_path / "sel"
    assert (
        runner.invoke(app, ["select", "--example", "-b", "40", "-o", str(selected)]).exit_code == 0
    )
    for flag in ("-o", "--out", "--output"):
        shards = tmp_path / f"shards{flag}"
        result = runner.invoke(app, ["materialize", str(selected), flag, str(shards)])
        assert result.exit_code == 0, result.stderr
        assert pl.read_parquet(selected / "manifest.parquet")["selected"].sum() == 40
        assert (shards / "index.json").exists()


def test_threads_are_set_in_one_place(tmp_path: Path) -> None:
    from scurate._engine.threads import available_cores, limited, one_blas_thread
    from threadpoolctl import threadpool_info

    with limited(1) as n:  # OpenMP of the native core and of FAISS, and every BLAS
        assert n == 1 and {p["num_threads"] for p in threadpool_info()} == {1}
        with one_blas_thread():
            assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} == {1}
    with limited(None) as n:
        assert n == available_cores()
    out = tmp_path / "out"
    one = runner.invoke(app, ["select", "--example", "-b", "30", "-o", str(out), "--threads", "1"])
    assert one.exit_code == 0, one.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["parameters"]["threads"] == 1 and report["parameters"]["threads_used"] == 1
    bad = runner.invoke(app, ["select", "--example", "-b", "30", "-o", str(out), "--threads", "0"])
    assert (
        bad.exit_code == 1
        and bad.stderr == "scurate: error: --threads 0: must be a whole number >= 1\n"
    )

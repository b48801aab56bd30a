"""Plugin discovery through real entry points; one broken plugin never hides the others."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import scurate
from scurate._plugins import hookspecs
from scurate._plugins.registry import discover, load_plugins
from scurate.errors import OptionError, PluginError

from plugin_helpers import (
    BROKEN_HOOK,
    BROKEN_IMPORT,
    BY_DATASET,
    TAKES_KCENTER,
    install_plugin,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_first_party_plugins_are_found_through_entry_points() -> None:
    found = discover()
    assert not found.failures
    assert {"kcenter", "random", "facility", "sketch", "reweight"} <= set(
        found.registries["policies"]
    )
    assert "pca" in found.registries["embedders"]
    assert ".h5ad" in found.registries["sources"]
    assert list(found.registries["harmonizers"]) == ["cellxgene", "columns", "ontology"]
    assert found.registries["policies"]["kcenter"].plugin == "policies"
    loaded = load_plugins()
    assert not loaded.failures
    assert loaded.first_party == {"embedders", "harmonizers", "policies", "sources"}
    loaded.pm.check_pending()


def test_an_installed_plugin_is_discovered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "by-dataset", BY_DATASET)
    found = discover()
    policy = found.get("policies", "by-dataset", option="--policy")
    assert policy.plugin == "by-dataset" and policy.summary == "alternate datasets"
    info = {i.name: i for i in found.info}["by-dataset"]
    assert info.version == "0.3" and info.provides == {"policies": ["by-dataset"]} and info.ok


def test_a_broken_plugin_is_named_and_hides_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    install_plugin(monkeypatch, site, "broken", BROKEN_IMPORT)
    install_plugin(monkeypatch, site, "grumpy", BROKEN_HOOK)
    found = discover()
    errors = {f.plugin: f.error for f in found.failures}
    assert (
        errors["broken"]
        == "ModuleNotFoundError: No module named 'scurate_missing_dependency_for_tests'"
    )
    assert errors["grumpy"] == "RuntimeError: no licence key configured"
    assert found.get("policies", "kcenter", option="policy").plugin == "policies"
    with pytest.raises(PluginError) as err:
        found.get("policies", "broken", option="policy")
    assert str(err.value) == (
        "policy='broken': plugin 'broken' failed "
        "(ModuleNotFoundError: No module named 'scurate_missing_dependency_for_tests')"
    )
    with pytest.raises(
        PluginError,
        match=r"policy='nope' is not a registered policy "
        r"\(available: cluster-balance, facility, facility-density, facility-kcenter, kcenter, "
        r"kcenter-density, random, reweight, sketch\); "
        r"plugin 'broken' failed",
    ):
        found.get("policies", "nope", option="--policy")


def test_a_taken_name_names_both_plugins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "copycat", TAKES_KCENTER)
    found = discover()
    errors = {f.plugin: f.error for f in found.failures}
    # scurate's own plugins register first, so 'copycat' (earlier by name) cannot take kcenter
    assert errors == {"copycat": "ValueError: 'kcenter' is already registered by plugin 'policies'"}


def test_every_hook_is_documented_in_the_readme() -> None:
    hooks = [name for name in dir(hookspecs) if name.startswith("scurate_register_")]
    assert len(hooks) == 4
    text = README.read_text()
    section = text[text.index("## Write a policy") :]
    for hook in hooks:
        assert re.search(rf"`{hook}\b", section), f"{hook} is not in the README's plugin section"


def readme_plugin(folder: Path) -> Path:
    """The README's 'Write a policy in 15 lines' module and pyproject, written to ``folder``."""
    section = README.read_text().split("## Write a policy in 15 lines", 1)[1]
    module = re.search(r"```python\n# (scurate_by_donor\.py)\n(.*?)```", section, re.S)
    pyproject = re.search(r"```toml\n(.*?)```", section, re.S)
    assert module and pyproject, "the README's plugin example is missing"
    code = module.group(2)
    assert len(code.splitlines()) <= 15, "the README promises 15 lines"
    assert len(pyproject.group(1).splitlines()) == 6, "the README promises a six-line pyproject"
    folder.mkdir()
    (folder / module.group(1)).write_text(code)
    (folder / "pyproject.toml").write_text(pyproject.group(1))
    return folder


def test_the_readme_plugin_installs_lists_and_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, two_labs: list[Path]
) -> None:
    from scurate.cli import app
    from typer.testing import CliRunner

    from plugin_helpers import install_project

    install_project(monkeypatch, tmp_path / "site", readme_plugin(tmp_path / "by-donor"))
    install_plugin(monkeypatch, tmp_path / "site", "broken", BROKEN_IMPORT)
    runner = CliRunner()
    listed = runner.invoke(app, ["plugins", "--json"])
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["by-donor"]["ok"] and rows["by-donor"]["provides"] == {"policies": ["by-donor"]}
    assert rows["by-donor"]["version"] == "0.1"
    assert rows["broken"]["ok"] is False and "ModuleNotFoundError" in rows["broken"]["error"]
    out = tmp_path / "out"
    args = ["select", *map(str, two_labs), "-b", "40", "-o", str(out), "--json", "--overwrite"]
    result = runner.invoke(app, [*args, "--policy", "by-donor"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["parameters"]["policy_plugin"] == "by-donor"
    # no donor is known, so it alternates datasets: 20 cells from each lab
    assert [d["selected"] for d in report["datasets"]] == [20, 20]
    # the broken plugin is named when asked for, and the built-ins still run beside it
    failed = runner.invoke(app, [*args, "--policy", "broken"])
    assert failed.exit_code == 1 and "plugin 'broken' failed (ModuleNotFoundError" in failed.stderr
    ok = runner.invoke(app, [*args, "--policy", "facility"])
    assert ok.exit_code == 0, ok.stderr


EXITS = """
    import sys
    from scurate import hookimpl

    def leaves(ctx, budget):
        sys.exit(3)

    @hookimpl
    def scurate_register_policies(register):
        register("leaves", leaves)
"""


def test_a_policy_that_calls_sys_exit_is_one_line_naming_it(
    two_labs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "leaves", EXITS)
    with pytest.raises(PluginError) as err:
        scurate.select(two_labs, 10, policy="leaves")
    assert str(err.value) == "policy 'leaves' (plugin 'leaves') called sys.exit(3)"


def test_a_param_no_policy_reads_is_one_line(two_labs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(OptionError) as err:
        scurate.select(two_labs, 10, policy="kcenter", params={"frist": "central"})
    assert str(err.value) == (
        "params['frist']='central': policy 'kcenter' has no parameter 'frist' (it reads: first)"
    )
    # every key a policy looks at counts as read, in whichever stratum it was read
    facility = scurate.select(two_labs, 10, policy="facility", params=["k=5", "sigma=0.5"])
    assert facility.report["n_selected"] == 10
    strata = scurate.select(
        two_labs, 10, policy="kcenter", params=["first=central"], strata="dataset_id"
    )
    assert strata.report["n_selected"] == 10


EMBEDDERS = """
    import sys
    import numpy as np
    from scurate import hookimpl
    from scurate.plugin import Embedding

    def raises(sources, *, rng, progress):
        raise RuntimeError("no GPU found")

    def exits(sources, *, rng, progress):
        sys.exit(2)

    def nan(sources, *, rng, progress):
        values = np.zeros((sum(s.n_obs for s in sources), 4), dtype=np.float32)
        values[7, 1] = np.nan
        return Embedding(values)

    @hookimpl
    def scurate_register_embedders(register):
        register("raises", raises)
        register("exits", exits)
        register("nan", nan)
"""


@pytest.mark.parametrize(
    ("embedder", "text"),
    [
        ("raises", "embedder 'raises' (plugin 'odd') failed: RuntimeError: no GPU found"),
        ("exits", "embedder 'exits' (plugin 'odd') called sys.exit(2)"),
        ("nan", "embedder 'nan' (plugin 'odd') returned NaN or inf in row 7 (1 such rows)"),
    ],
)
def test_an_embedder_that_fails_is_one_line_naming_it(
    two_labs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: str, text: str
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "odd", EMBEDDERS)
    for policy in ("random", "kcenter"):
        with pytest.raises(PluginError) as err:
            scurate.select(two_labs, 10, embedder=embedder, policy=policy)
        assert str(err.value) == text


READERS = """
    import sys
    from scurate import hookimpl

    def broken(path, dataset_id):
        raise ValueError("unsupported compression")

    def leaves(path, dataset_id):
        sys.exit(4)

    def nothing(path, dataset_id):
        return None

    @hookimpl
    def scurate_register_sources(register):
        register(".brk", broken)
        register(".bye", leaves)
        register(".none", nothing)
"""


def test_a_source_reader_that_fails_is_one_line_naming_it(
    two_labs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "odd-readers", READERS)
    for suffix, text in [
        (".brk", "failed: ValueError: unsupported compression"),
        (".bye", "called sys.exit(4)"),
        (".none", "returned NoneType, not a source (it has no n_obs, n_vars, obs_names"),
    ]:
        path = tmp_path / f"lab{suffix}"
        path.write_bytes(b"x")
        with pytest.raises(PluginError) as err:
            scurate.select([two_labs[0], path], 10)
        assert str(err.value).startswith(f"source reader '{suffix}' on {path} {text}")

"""The plugin API: plugins import only ``scurate`` and ``scurate.plugin``, every name of
``scurate.plugin`` resolves, and scurate's own plugins implement only hooks that exist."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import scurate
import scurate.plugin
from scurate._plugins.registry import load_plugins

import plugin_helpers

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = ("scurate", "scurate.plugin")


def scurate_imports(tree: ast.AST) -> Iterator[tuple[int, str, str]]:
    """(line, module, the import as written) for every absolute import of scurate."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "scurate":
                    yield node.lineno, alias.name, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "scurate":
                continue
            names = ", ".join(a.name for a in node.names)
            written = f"from {node.module} import {names}"
            yield node.lineno, node.module, written
            if node.module == "scurate":  # `from scurate import _core` reaches a module too
                for alias in node.names:
                    if alias.name not in (*scurate.__all__, "plugin"):
                        yield node.lineno, f"scurate.{alias.name}", written


def forbidden(tree: ast.AST, where: str) -> list[str]:
    return [
        f"{where}:{line}: {written}"
        for line, module, written in scurate_imports(tree)
        if module not in ALLOWED
    ]


def test_first_party_plugins_import_only_scurate_and_scurate_plugin() -> None:
    files = sorted((ROOT / "plugins").rglob("*.py"))
    assert len(files) >= 10
    bad = []
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        bad += forbidden(tree, str(path.relative_to(ROOT)))
    assert not bad, "plugins may import only scurate and scurate.plugin:\n" + "\n".join(bad)


def test_the_test_suites_plugins_import_only_scurate_and_scurate_plugin() -> None:
    codes = {
        name: textwrap.dedent(value)
        for name, value in vars(plugin_helpers).items()
        if isinstance(value, str) and "@hookimpl" in value
    }
    assert len(codes) >= 5
    bad = []
    for name, code in codes.items():
        bad += forbidden(ast.parse(code), f"tests/plugin_helpers.py {name}")
    assert not bad, "\n".join(bad)


def test_the_check_names_a_private_import() -> None:
    code = "from scurate import hookimpl, _core\nimport scurate._data.sources\n"
    assert forbidden(ast.parse(code), "p.py") == [
        "p.py:1: from scurate import hookimpl, _core",
        "p.py:2: import scurate._data.sources",
    ]


@pytest.mark.parametrize("name", scurate.plugin.__all__)
def test_every_name_of_the_plugin_api_resolves(name: str) -> None:
    assert getattr(scurate.plugin, name) is not None


def test_the_plugin_api_lists_what_it_holds() -> None:
    public = {
        name for name in vars(scurate.plugin) if not name.startswith("_") and name != "annotations"
    }
    assert public == set(scurate.plugin.__all__)
    assert len(scurate.plugin.__all__) == len(set(scurate.plugin.__all__))
    for name in scurate.plugin.__all__:
        assert name in (scurate.plugin.__doc__ or ""), f"{name} is not in the module's docstring"


def test_no_private_module_imports_the_plugin_api() -> None:
    package = Path(scurate.__file__).parent
    bad = []
    for path in sorted(package.glob("_*/**/*.py")):
        for line, module, written in scurate_imports(ast.parse(path.read_text())):
            from_root = module == "scurate" and "plugin" in written.split(" import ")[1].split(", ")
            if module == "scurate.plugin" or from_root:
                bad.append(f"{path.relative_to(package)}:{line}: {written}")
    assert len(list(package.glob("_*/**/*.py"))) > 20
    assert not bad, "scurate.plugin re-exports the private modules; none may import it back"


def test_the_plugin_api_imports_on_its_own() -> None:
    run = subprocess.run(
        [sys.executable, "-c", "import scurate.plugin as p; print(len(p.__all__))"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(scurate.__file__).parents[1],
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(len(scurate.plugin.__all__))


def test_our_plugins_implement_only_declared_hooks() -> None:
    loaded = load_plugins()
    assert not loaded.failures
    assert loaded.first_party == {"embedders", "harmonizers", "policies", "sources"}
    loaded.pm.check_pending()

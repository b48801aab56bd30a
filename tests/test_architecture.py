"""The layout keeps its promises: layers import downwards only, no import cycle at module level,
FAISS in one module, no monolith, and no function hiding a module of the same name."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
import scurate

PACKAGE = Path(scurate.__file__).parent
# each layer may import the ones after it (and errors, the public exception types), never the
# ones before: cli > _bench > _feed > _engine > _report > _compute > _data > _plugins
LAYERS = ("cli", "_bench", "_feed", "_engine", "_report", "_compute", "_data", "_plugins")
MAX_LINES = 600  # a module longer than this does several jobs: split it by job


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _top_level_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The scurate modules ``path`` imports when it is imported (function bodies and
    ``TYPE_CHECKING`` blocks left out: those imports are lazy on purpose)."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # if TYPE_CHECKING:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in modules else node.module)
    return {m for m in out if m.startswith("scurate")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: _top_level_imports(path, modules) & set(modules) for name, path in modules.items()
    }


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_layers_import_downwards_only() -> None:
    wrong = []
    for module, imports in _graph().items():
        here = _layer(module)
        if here is None:
            continue
        for target in imports:
            there = _layer(target)
            if there is not None and LAYERS.index(there) < LAYERS.index(here):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_at_module_level() -> None:
    graph = {m: {t for t in ts if t != "scurate"} for m, ts in _graph().items()}
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if state.get(nxt) is None and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if state.get(start) is None and (cycle := visit(start, [start])):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def _importing(package: str) -> list[str]:
    """The scurate modules that import ``package`` anywhere (function bodies included)."""
    return sorted(
        name
        for name, path in _modules().items()
        if any(
            (isinstance(n, ast.Import) and any(a.name.split(".")[0] == package for a in n.names))
            or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == package)
            for n in ast.walk(ast.parse(path.read_text()))
        )
    )


def test_faiss_is_imported_in_one_module() -> None:
    assert _importing("faiss") == ["scurate._compute.faiss_index"]


def test_ray_is_imported_in_one_module() -> None:
    # the single-machine path never depends on Ray: only the backend module imports it, lazily
    assert _importing("ray") == ["scurate._backend"]
    tree = ast.parse((PACKAGE / "_backend.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert "ray" not in {name.split(".")[0] for name in names}


def test_no_module_is_a_monolith() -> None:
    long = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    assert not {n: k for n, k in long.items() if k > MAX_LINES}


def test_no_function_hides_a_module_of_the_same_name() -> None:
    hidden = []
    for info in pkgutil.walk_packages(scurate.__path__, "scurate."):
        if not info.ispkg:
            continue
        package = importlib.import_module(info.name)
        for sub in pkgutil.iter_modules(package.__path__):
            if inspect.isroutine(getattr(package, sub.name, None)):
                hidden.append(f"{info.name}.{sub.name}")
    for sub in pkgutil.iter_modules(scurate.__path__):
        if inspect.isroutine(getattr(scurate, sub.name, None)):
            hidden.append(f"scurate.{sub.name}")
    assert not hidden


def test_the_public_face_is_what_all_says() -> None:
    assert all(hasattr(scurate, name) for name in scurate.__all__)
    assert {"select", "score", "bench", "build_index", "harmonize", "materialize"} <= set(
        scurate.__all__
    )
    assert {"SelectOptions", "ScoreOptions", "BenchOptions", "IndexOptions"} <= set(scurate.__all__)

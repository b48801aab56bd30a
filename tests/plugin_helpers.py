"""Install plugins for real: a module plus a dist-info folder on sys.path, found through the
``scurate`` entry-point group exactly as a pip-installed plugin is."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


def install_plugin(monkeypatch: pytest.MonkeyPatch, site: Path, name: str, code: str) -> None:
    """Install ``code`` as module ``scurate_<name>`` of distribution ``scurate-<name>``, with the
    entry point ``<name>`` in the ``scurate`` group."""
    dist, module, ep_name = f"scurate-{name}", f"scurate_{name.replace('-', '_')}", name
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-0.3.dist-info"  # as pip names it
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[scurate]\n{ep_name} = {module}\n")
    monkeypatch.syspath_prepend(str(site))


BY_DATASET = """
    import numpy as np
    from scurate import hookimpl

    def by_dataset(ctx, budget):
        # round-robin over datasets, in row order within each
        groups = [np.flatnonzero(ctx.manifest["dataset_id"].to_numpy() == d)
                  for d in ctx.manifest["dataset_id"].unique(maintain_order=True)]
        order = [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]
        return np.array(order[:budget])

    @hookimpl
    def scurate_register_policies(register):
        register("by-dataset", by_dataset, summary="alternate datasets")
"""

BROKEN_IMPORT = """
    import scurate_missing_dependency_for_tests
"""

BROKEN_HOOK = """
    from scurate import hookimpl

    @hookimpl
    def scurate_register_policies(register):
        raise RuntimeError("no licence key configured")
"""

TAKES_KCENTER = """
    from scurate import hookimpl

    @hookimpl
    def scurate_register_policies(register):
        register("kcenter", lambda ctx, budget: list(range(budget)))
"""

BAD_OUTPUT = """
    from scurate import hookimpl

    @hookimpl
    def scurate_register_policies(register):
        register("repeats", lambda ctx, budget: [0] * budget)
        register("short", lambda ctx, budget: list(range(budget - 1)))
        register("raises", lambda ctx, budget: 1 / 0)
"""

VANISHING = """
    from scurate import hookimpl
    from scurate.plugin import H5adSource

    class VanishingSource(H5adSource):
        # an h5ad whose file is removed once its obs and genes have been read
        def iter_x(self, chunk_rows=8192):
            self.path.unlink(missing_ok=True)
            return super().iter_x(chunk_rows)

    @hookimpl
    def scurate_register_sources(register):
        register(".h5vanish", VanishingSource, summary="h5ad removed while it is read")
"""

BY_BATCH = """
    import polars as pl
    from scurate import hookimpl

    def lab_from_batch(obs, dataset_id):
        # a lab's own rule: its batch column says which lab
        if "batch" not in obs.columns:
            return obs
        return obs.with_columns(lab=pl.col("batch").str.split("_").list.first())

    def explodes(obs, dataset_id):
        raise KeyError("no such column: donor")

    @hookimpl
    def scurate_register_harmonizers(register):
        register("lab-from-batch", lab_from_batch, summary="lab from batch")
        register("zz-explodes", explodes)
"""

BY_CELL_TYPE = """
    import numpy as np
    from scurate import hookimpl

    def by_cell_type(ctx, budget):
        # one cell of each harmonized cell type first, then the rest in row order
        labels = ctx.manifest["cell_type"].to_list()
        ctx.info["seen_cell_types"] = sorted(set(labels))
        first = [labels.index(t) for t in sorted(set(labels))]
        rest = [i for i in range(len(labels)) if i not in set(first)]
        return np.array((first + rest)[:budget])

    @hookimpl
    def scurate_register_policies(register):
        register("by-cell-type", by_cell_type, summary="one of each cell type first")
"""


def install_project(monkeypatch: pytest.MonkeyPatch, site: Path, project: Path) -> None:
    """Install a one-module plugin project (``pyproject.toml`` + ``<module>.py``) into ``site``
    as pip lays it out: the module, and a dist-info with the name, version and entry points
    that the pyproject declares."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    site.mkdir(exist_ok=True)
    for module in project.glob("*.py"):
        (site / module.name).write_text(module.read_text())
    dist, version = meta["name"], meta["version"]
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    requires = "".join(f"Requires-Dist: {r}\n" for r in meta.get("dependencies", []))
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{requires}"
    )
    groups = meta.get("entry-points", {})
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in eps.items())
            for group, eps in groups.items()
        )
    )
    monkeypatch.syspath_prepend(str(site))

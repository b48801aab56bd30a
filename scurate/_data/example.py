"""The small example corpus shipped in the package, so the quick start needs no download."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def example_dir() -> Path:
    """The folder of example .h5ad files (several labs; see its README.md)."""
    return Path(str(files("scurate") / "data" / "example"))


def example_sources() -> list[Path]:
    return sorted(example_dir().glob("*.h5ad"))

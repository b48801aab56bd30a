"""scurate: build single-cell training sets for coverage, not volume."""

from __future__ import annotations

import importlib.metadata

from scurate import _env  # noqa: F401  (first: sets OpenMP's wait policy before it loads)
from scurate._bench.run import BenchResult, bench, bench_to_dir
from scurate._compute.kernels import covering_radius, farthest_first
from scurate._data.harmonization import Harmonized, harmonize
from scurate._engine.choose import SelectionContext
from scurate._engine.jobs import Selection, select, select_to_dir
from scurate._feed.shards import Materialized, materialize
from scurate._plugins.hookspecs import hookimpl
from scurate.errors import InputError, OptionError, PluginError, ScurateError

try:
    __version__ = importlib.metadata.version("scurate")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "BenchResult",
    "Harmonized",
    "InputError",
    "Materialized",
    "OptionError",
    "PluginError",
    "ScurateError",
    "Selection",
    "SelectionContext",
    "__version__",
    "bench",
    "bench_to_dir",
    "covering_radius",
    "farthest_first",
    "harmonize",
    "hookimpl",
    "materialize",
    "select",
    "select_to_dir",
]

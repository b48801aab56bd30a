"""scurate: build single-cell training sets for coverage, not volume.

The public face: the jobs (``select``, ``score``, ``build_index``, ``bench``, ``harmonize``,
``materialize``), their options and results, the loader a trainer reads with, and the errors.
A plugin imports what it needs from :mod:`scurate.plugin`. Everything under ``scurate._*`` is
private and may move.
"""

from __future__ import annotations

import importlib.metadata

from scurate import (
    _env,  # noqa: F401  (first: sets OpenMP's wait policy before it loads)
    _heap,  # noqa: F401  (fixes the allocator's mmap threshold, see its doc)
)
from scurate._bench.options import BenchOptions
from scurate._bench.run import BenchResult, bench, bench_to_dir
from scurate._compute.kernels import covering_radius, farthest_first
from scurate._data.harmonization import Harmonized, harmonize
from scurate._engine.context import SelectionContext
from scurate._engine.jobs import (
    Scores,
    Selection,
    annotate,
    build_index,
    score,
    score_to_dir,
    select,
    select_to_dir,
)
from scurate._engine.options import IndexOptions, ScoreOptions, SelectOptions
from scurate._feed.loader import CellLoader
from scurate._feed.shards import Materialized, materialize
from scurate._plugins.hookspecs import hookimpl
from scurate.errors import InputError, OptionError, PluginError, ScurateError

try:
    __version__ = importlib.metadata.version("scurate")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "BenchOptions",
    "BenchResult",
    "CellLoader",
    "Harmonized",
    "IndexOptions",
    "InputError",
    "Materialized",
    "OptionError",
    "PluginError",
    "ScoreOptions",
    "Scores",
    "ScurateError",
    "SelectOptions",
    "Selection",
    "SelectionContext",
    "__version__",
    "annotate",
    "bench",
    "bench_to_dir",
    "build_index",
    "covering_radius",
    "farthest_first",
    "harmonize",
    "hookimpl",
    "materialize",
    "score",
    "score_to_dir",
    "select",
    "select_to_dir",
]

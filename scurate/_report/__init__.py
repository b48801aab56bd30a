"""The report page's parts: the per-dataset "adds" table and the page rendered from a run's
manifest and record (:mod:`scurate._engine.pages` reads them from a finished folder)."""

from scurate._report.adds import adds_table
from scurate._report.page import render

__all__ = ["adds_table", "render"]

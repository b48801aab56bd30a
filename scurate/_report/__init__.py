"""report.html: what a run kept, what each dataset adds, and why each cell is in or out."""

from scurate._report.adds import adds_table
from scurate._report.page import render_report, write_report

__all__ = ["adds_table", "render_report", "write_report"]

"""Progress of a long job, as ``progress(stage, done, total)`` calls.

The library never prints. Its default callback, :class:`LogProgress`, writes a line to the
``scurate.progress`` logger when a stage has run a while since its last line, and when a stage
that took that long ends: ``embed: 120,000/1,000,000 cells (12 %, 31 s)``. A notebook shows
them after ``logging.basicConfig(level=logging.INFO)``; the CLI shows them on stderr whenever
stderr is no terminal (piped, redirected, or in CI), where it cannot draw bars.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("scurate.progress")

Progress = Callable[[str, int, int], None]
EVERY_S = 10.0  # seconds between two lines of one stage


class LogProgress:
    """A ``progress`` callback that logs a line per stage at most every ``every`` seconds, and
    the end of every stage that lasted longer than that."""

    def __init__(
        self, every: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every = EVERY_S if every is None else every
        self.clock = clock
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = self.clock()
        start = self.started.setdefault(stage, now)
        if total > 0 and done >= total:  # the stage ended: a line if it ran a while
            del self.started[stage]
            self.last.pop(stage, None)
            if now - start >= self.every:
                self._line(stage, done, total, now - start)
        elif now - self.last.get(stage, start) >= self.every:
            self.last[stage] = now
            self._line(stage, done, total, now - start)

    @staticmethod
    def _line(stage: str, done: int, total: int, seconds: float) -> None:
        share = f"{100 * done / total:.0f} %, " if total > 0 else ""
        log.info("%s: %s/%s (%s%.0f s)", stage, f"{done:,}", f"{total:,}", share, seconds)

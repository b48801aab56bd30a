"""First-party selection policies, registered through the same entry point as anyone's."""

from __future__ import annotations

from scurate import hookimpl
from scurate.hookspecs import Register

from .kcenter import kcenter
from .uniform import uniform


@hookimpl
def scurate_register_policies(register: Register) -> None:
    register("kcenter", kcenter, summary="farthest-first traversal; rare states enter early")
    register("random", uniform, summary="uniformly random cells, the baseline to beat")

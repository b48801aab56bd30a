"""First-party selection policies, registered through the same entry point as anyone's."""

from __future__ import annotations

from scurate import hookimpl
from scurate.plugin import Register

from .facility import facility_location
from .kcenter import kcenter
from .reweight import reweight
from .sketch import sketch
from .uniform import uniform


@hookimpl
def scurate_register_policies(register: Register) -> None:
    register("kcenter", kcenter, summary="farthest-first traversal; rare states enter early")
    register("random", uniform, summary="uniformly random cells, the baseline to beat")
    register("facility", facility_location, summary="facility location, lazy greedy, kNN graph")
    register("sketch", sketch, summary="geometric sketch: one cell per plaid-grid box, cycled")
    register("reweight", reweight, summary="equal cells per type, water-filled (--param label)")

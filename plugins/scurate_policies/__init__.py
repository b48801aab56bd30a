"""First-party selection policies, registered through the same entry point as anyone's."""

from __future__ import annotations

from scurate import hookimpl
from scurate.plugin import Register

from .cluster import cluster_balance
from .facility import facility_kcenter, facility_location
from .kcenter import kcenter, kcenter_density
from .mix import facility_density
from .reweight import reweight
from .sketch import sketch
from .uniform import uniform


@hookimpl
def scurate_register_policies(register: Register) -> None:
    register("kcenter", kcenter, summary="farthest-first traversal; rare states enter early")
    register("random", uniform, summary="uniformly random cells, the baseline to beat")
    register("facility", facility_location, summary="facility location, stochastic greedy, kNN")
    register(
        "facility-kcenter",
        facility_kcenter,
        summary="facility picks while gains are high, then farthest-first into the gaps",
    )
    register(
        "kcenter-density",
        kcenter_density,
        summary="farthest-first with distances weighted by density; outliers stop winning",
    )
    register(
        "cluster-balance",
        cluster_balance,
        summary="k-means clusters (FAISS), water-filled like reweight; no labels needed",
    )
    register(
        "facility-density",
        facility_density,
        summary="facility location and density-weighted farthest-first, a pick each in turn",
    )
    register("sketch", sketch, summary="geometric sketch: one cell per plaid-grid box, cycled")
    register("reweight", reweight, summary="equal cells per type, water-filled (--param label)")

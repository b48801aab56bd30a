"""Running a job: options, the shared stages, choosing cells, strata, reports and outputs."""

"""report.json and bench.json: what ran, what each job found, how long it took, with what."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._compute.scoring import dataset_overlap
from scurate._data import manifest as mf
from scurate._data.memory import Input, describe
from scurate._engine.options import Options
from scurate._engine.stages import ScoredPool

REPORT_VERSION = 1
VERSIONED = (
    "scurate",
    "numpy",
    "scipy",
    "anndata",
    "h5py",
    "polars",
    "pluggy",
    "faiss-cpu",
    "faiss-gpu",
    "scikit-learn",  # scurate bench's classifier
    "torch",  # scurate bench --representations autoencoder, scurate.loader.TorchDataset
)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


Codes = tuple[list[str], NDArray[np.int32]]  # the dataset names and each cell's among them


def dataset_codes(manifest: pl.DataFrame) -> Codes:
    """The manifest's datasets in source order, and each cell's position among them, for the
    per-dataset counts (``np.bincount`` of these, where a group-by over the id and path of
    every cell held 1.6 GB at ten million cells); found once per section, 0.3 s at 10M."""
    return mf.codes(manifest["dataset_id"])


def per_dataset(manifest: pl.DataFrame, codes: Codes) -> list[dict[str, Any]]:
    """Pool and selected cells per dataset (``codes``: :func:`dataset_codes`), in source
    order."""
    names, at = codes
    first = np.unique(at, return_index=True)[1]
    sources = manifest["source"].gather(first).to_list()
    pool = np.bincount(at, minlength=len(names))
    selected = np.bincount(
        at, weights=manifest["selected"].fill_null(False).to_numpy(), minlength=len(names)
    ).astype(np.int64)
    return [
        {
            "dataset_id": name,
            "source": source,
            "pool": int(p),
            "selected": int(k),
            "fraction": round(float(k / p), 6),
        }
        for name, source, p, k in zip(names, sources, pool, selected, strict=True)
    ]


def radius_curve(radii: list[float], points: int = 40) -> list[dict[str, float]]:
    """The covering radius at about ``points`` log-spaced selection sizes, the last included."""
    n = len(radii)
    if n == 0:
        return []
    sizes = np.unique(np.geomspace(1, n, num=min(points, n)).round().astype(int))
    return [{"n_selected": int(k), "radius": round(float(radii[k - 1]), 6)} for k in sizes]


def job_report(
    sources: Input,
    options: Options,
    timings: dict[str, float],
    *,
    parameters: dict[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """The one shape of report.json and bench.json: what ran (the sources and the options, as
    :meth:`Options.to_report` writes them, plus ``parameters`` a job adds), the job's
    ``sections``, then how long each stage took and the versions."""
    return {
        "report_version": REPORT_VERSION,
        "parameters": {
            "sources": describe(sources),
            **options.to_report(),
            **(parameters or {}),
        },
        **sections,
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "versions": versions(),
    }


def _per_dataset(codes: Codes, mask: NDArray[np.bool_]) -> dict[str, int]:
    """How many cells of each dataset ``mask`` marks."""
    names, at = codes
    counts = np.bincount(at[np.asarray(mask, dtype=bool)], minlength=len(names))
    return {name: int(c) for name, c in zip(names, counts, strict=True)}


def pool_sections(
    pool: ScoredPool,
    keep: NDArray[np.bool_],
    manifest: pl.DataFrame | None = None,
    primary: NDArray[np.bool_] | None = None,
    failed_qc: NDArray[np.bool_] | None = None,
) -> dict[str, Any]:
    """What the report says of a scored pool: its datasets (counted on ``manifest``, the
    pool's own by default), the scores' rules, duplicates found and set aside (``~keep``; with
    ``primary``, the cells ``primary_only`` let through, those it set aside are counted apart,
    under ``primary_only``; cells that ``failed_qc`` are counted under ``qc``), the overlap
    between datasets, harmonization and embedding."""
    scores = pool.scores
    manifest = pool.manifest if manifest is None else manifest
    passed = np.ones(manifest.height, dtype=bool) if primary is None else primary
    if failed_qc is not None:
        passed = passed & ~failed_qc
    duplicates = ~keep & passed
    codes = dataset_codes(manifest)
    sections: dict[str, Any] = {
        "n_pool": manifest.height,
        "datasets": per_dataset(manifest, codes),
        "scores": scores.info,
        "duplicates": {
            "exact_copies": int((scores.exact_dup_of >= 0).sum()),
            "in_near_dup_groups": int((scores.near_dup_group >= 0).sum()),
            "set_aside": int(duplicates.sum()),
            "set_aside_per_dataset": _per_dataset(codes, duplicates),
        },
        "overlap": dataset_overlap(
            manifest["dataset_id"], scores.exact_dup_of, scores.near_dup_group
        ),
        "harmonization": pool.harmonization,
        "work_dir": {"entry": pool.stored, "reused": pool.reused},
        "embedding": pool.embedding.info,
    }
    qc_info = scores.info.get("qc")
    if qc_info is not None:
        sections["qc_values"] = qc_info
    if primary is not None:
        sections["primary_only"] = {
            "set_aside": int((~primary).sum()),
            "set_aside_per_dataset": _per_dataset(codes, ~primary),
        }
    return sections


def qc_section(
    manifest: pl.DataFrame,
    spec: str,
    failed: dict[str, NDArray[np.bool_]],
    primary: NDArray[np.bool_] | None = None,
) -> dict[str, Any]:
    """What QC set aside: in all and per dataset, per filter (a cell may fail several) and in
    all (a cell counted once; with ``primary``, cells ``primary_only`` set aside first are not
    counted)."""
    n = manifest.height
    passed = np.ones(n, dtype=bool) if primary is None else primary
    per_filter = {name: mask & passed for name, mask in failed.items()}
    any_failed = np.zeros(n, dtype=bool)
    for mask in per_filter.values():
        any_failed |= mask
    codes = dataset_codes(manifest)
    by_dataset = _per_dataset(codes, any_failed)
    filters = {name: _per_dataset(codes, mask) for name, mask in per_filter.items()}
    return {
        "spec": spec,
        "set_aside": int(any_failed.sum()),
        "failed_per_filter": {name: int(mask.sum()) for name, mask in per_filter.items()},
        "per_dataset": {
            dataset: {"set_aside": count, **{f: filters[f].get(dataset, 0) for f in filters}}
            for dataset, count in by_dataset.items()
        },
    }

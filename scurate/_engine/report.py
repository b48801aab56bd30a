"""report.json: what was selected from where, how well it covers the pool, and how it ran."""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from scurate._data.manifest import MANIFEST_SCHEMA

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


def per_dataset(manifest: pl.DataFrame) -> list[dict[str, Any]]:
    """Pool and selected cells per dataset, in source order."""
    table = (
        manifest.group_by("dataset_id", "source", maintain_order=True)
        .agg(pl.len().alias("pool"), pl.col("selected").sum().alias("selected"))
        .with_columns((pl.col("selected") / pl.col("pool")).round(6).alias("fraction"))
    )
    return table.to_dicts()


def radius_curve(radii: list[float], points: int = 40) -> list[dict[str, float]]:
    """The covering radius at about ``points`` log-spaced selection sizes, the last included."""
    n = len(radii)
    if n == 0:
        return []
    sizes = np.unique(np.geomspace(1, n, num=min(points, n)).round().astype(int))
    return [{"n_selected": int(k), "radius": round(float(radii[k - 1]), 6)} for k in sizes]


def build_report(
    *,
    manifest: pl.DataFrame,
    parameters: dict[str, Any],
    embedding: dict[str, Any],
    covering_radius: float | None,
    mean_distance: float | None,
    radii: list[float] | None,
    policy_info: dict[str, Any],
    timings: dict[str, float],
) -> dict[str, Any]:
    selected = int(manifest["selected"].sum())
    return {
        "report_version": REPORT_VERSION,
        "parameters": parameters,
        "n_pool": manifest.height,
        "n_selected": selected,
        "datasets": per_dataset(manifest),
        "covering_radius": None if covering_radius is None else round(covering_radius, 6),
        "covering_radius_curve": radius_curve(radii or []),
        # mean distance of a pool cell to its nearest selected cell (FAISS, exact); null when
        # that search would be too costly on the CPU
        "mean_distance_to_selected": None if mean_distance is None else round(mean_distance, 6),
        "embedding": embedding,
        "policy_info": {k: v for k, v in policy_info.items() if k != "covering_radius"},
        "manifest_columns": list(MANIFEST_SCHEMA),
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "versions": versions(),
    }


def write_json(data: dict[str, Any], path: Path) -> None:
    """Write to a temporary name and rename: a report that exists is complete."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)

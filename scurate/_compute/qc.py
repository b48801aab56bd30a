"""Quality control: per-cell counts, detected genes, mitochondrial fraction and a doublet score,
and the filters that keep failed cells out of a selection.

The count values are computed in the native core (``_core.qc_rows``) during the read that hashes
every counts source for exact duplicates (:mod:`scurate._compute.dedup`), so they cost no pass
of their own and are filled whatever the embedding (PCA or ``obsm_key``). A source with no
counts (X normalized) gets nulls, and the report says so.

Mitochondrial genes are found per source (:func:`mito_columns`): a boolean var column ``mt`` or
``mito`` where there is one; else symbols starting with ``MT-``/``mt-`` (var_names or a symbol
column such as ``feature_name``), together with Ensembl ids whose symbol in the shipped gene
table (:mod:`scurate._data.id_table`) starts so.

The doublet score is in :mod:`scurate._compute.doublets`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate._data import id_table
from scurate._data.genes import gene_keys
from scurate._data.manifest import codes
from scurate._data.sources import GeneTable
from scurate.errors import OptionError

MITO_FLAGS = ("mt", "mito")
MITO_PREFIX = "mt-"  # compared lower-case: MT-CO1 (human), mt-Co1 (mouse)

# filters, per assay: (min_genes, max_mito); the first rule whose words the harmonized
# assay or suspension_type contains applies (see the README's QC table)
ASSAY_DEFAULTS: tuple[tuple[str, str, int, float], ...] = (
    ("suspension_type", "nucleus", 200, 0.05),
    ("assay", "nuc", 200, 0.05),  # snRNA-seq, sci-RNA-seq nuclei, 10x "single nucleus"
    ("assay", "smart-seq", 500, 0.2),  # full-length plate protocols detect more genes
)
DEFAULT_MIN_GENES = 200
DEFAULT_MAX_MITO = 0.2
FILTERS = ("min_genes", "min_counts", "max_mito", "doublets")
QC_KEYS = "doublets, max_mito, min_counts, min_genes"


def mito_columns(genes: GeneTable) -> tuple[NDArray[np.bool_], str | None]:
    """Which columns of a source are mitochondrial genes, and where that was read (None where
    none was found)."""
    n = len(genes.names)
    lowered = {k.lower(): k for k in genes.columns}
    for flag in MITO_FLAGS:
        if flag in lowered:
            values = np.asarray(genes.columns[lowered[flag]], dtype=object)
            mask = np.array([str(v).lower() in ("true", "1") for v in values], dtype=bool)
            return mask, f"var['{lowered[flag]}']"
    keys = gene_keys(genes)
    mask = np.zeros(n, dtype=bool)
    found: list[str] = []
    if keys.symbols is not None:
        by_symbol = np.array(
            [isinstance(s, str) and s.lower().startswith(MITO_PREFIX) for s in keys.symbols]
        )
        if by_symbol.any():
            mask |= by_symbol
            found.append(f"symbols in {keys.symbols_from}")
    if keys.ensembl is not None:
        organism = id_table.organism_of_ids(keys.ensembl)
        if organism is not None:
            table = id_table.load(organism).id_to_symbol
            by_id = np.array(
                [
                    isinstance(g, str) and table.get(g, "").lower().startswith(MITO_PREFIX)
                    for g in keys.ensembl
                ]
            )
            if (by_id & ~mask).any():
                mask |= by_id
                found.append(f"ids in {keys.ensembl_from} through the gene table")
    return mask, " and ".join(found) or None


@dataclass
class QcValues:
    """Per pool row: counts, genes and mitochondrial fraction (NaN / -1 where the source has no
    counts), the doublet score (NaN where not scored), and what the report says of them."""

    n_counts: NDArray[np.float32]
    n_genes: NDArray[np.int64]
    mito_fraction: NDArray[np.float32]
    doublet_score: NDArray[np.float32]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QcSpec:
    """The QC filters: each None takes its per-assay default; ``doublets`` is ``"auto"`` (the
    threshold from the simulated doublets), ``"off"`` or a score threshold; ``enabled=False``
    (``qc="off"``) filters nothing."""

    enabled: bool = True
    min_genes: int | None = None
    min_counts: float | None = None
    max_mito: float | None = None
    doublets: str | float = "auto"

    def as_given(self) -> str:
        """The spec as ``--qc`` writes it (for report.json)."""
        if not self.enabled:
            return "off"
        parts = [
            f"{name}={value}"
            for name in ("min_genes", "min_counts", "max_mito")
            if (value := getattr(self, name)) is not None
        ]
        return ",".join([*parts, f"doublets={self.doublets}"])

    @property
    def scores_doublets(self) -> bool:
        """Whether the pool needs a doublet score for these filters."""
        return self.enabled and self.doublets != "off"


def _number(key: str, text: str, *, whole: bool, most: float | None) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    bad = not math.isfinite(value) or value < 0 or (most is not None and value > most)
    if whole and not bad and value != int(value):
        bad = True
    if bad:
        want = (
            "a whole number >= 0"
            if whole
            else (f"a number in [0, {most:g}]" if most is not None else "a number >= 0")
        )
        msg = f"qc='{key}={text}': expected {want} for {key}"
        raise OptionError(msg)
    return value


def parse_qc(value: QcSpec | str | Mapping[str, Any] | None) -> QcSpec:
    """``"min_genes=200,max_mito=0.2,doublets=auto"`` (or a mapping; ``"off"`` disables every
    filter; a key left out or given as ``auto`` takes its per-assay default), or one line naming
    the key that is wrong."""
    if value is None or isinstance(value, QcSpec):
        return value or QcSpec()
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "off":
            return QcSpec(enabled=False)
        if text.lower() in ("", "auto", "on"):
            return QcSpec()
        pairs: dict[str, str] = {}
        for part in text.split(","):
            key, sep, given = part.partition("=")
            if not sep or not key.strip():
                msg = f"qc='{part.strip()}': expected key=value (keys: {QC_KEYS}) or off"
                raise OptionError(msg)
            pairs[key.strip()] = given.strip()
    else:
        pairs = {str(k): str(v).strip() for k, v in dict(value).items()}
    if unknown := sorted(set(pairs) - set(FILTERS)):
        msg = f"qc='{unknown[0]}={pairs[unknown[0]]}': unknown key {unknown[0]!r} (keys: {QC_KEYS})"
        raise OptionError(msg)
    spec: dict[str, Any] = {}
    for key, given in pairs.items():
        if key == "doublets":
            lowered = given.lower()
            if lowered in ("auto", "off"):
                spec[key] = lowered
                continue
            score = _number(key, given, whole=False, most=1.0)
            if score == 0:
                msg = f"qc='doublets={given}': expected auto, off or a score in (0, 1] for doublets"
                raise OptionError(msg)
            spec[key] = score
        elif given.lower() == "auto":
            continue
        elif key == "min_genes":
            spec[key] = int(_number(key, given, whole=True, most=None))
        elif key == "min_counts":
            spec[key] = _number(key, given, whole=False, most=None)
        else:
            spec[key] = _number(key, given, whole=False, most=1.0)
    return QcSpec(**spec)


def defaults_for(assay: str | None, suspension_type: str | None) -> tuple[int, float]:
    """(min_genes, max_mito) for a dataset's harmonized assay and suspension type."""
    fields = {"assay": (assay or "").lower(), "suspension_type": (suspension_type or "").lower()}
    for column, word, min_genes, max_mito in ASSAY_DEFAULTS:
        if word in fields[column]:
            return min_genes, max_mito
    return DEFAULT_MIN_GENES, DEFAULT_MAX_MITO


def gene_floor(n_genes: NDArray[np.int64]) -> float:
    """The fewest genes a dataset's own cells make typical: 3 scaled MADs below the median of
    log1p(genes) (scater's ``isOutlier``), over the cells with counts; 0 for under 20 cells."""
    genes = np.log1p(n_genes[n_genes >= 0].astype(np.float64))
    if len(genes) < 20:
        return 0.0
    median, mad = median_mad(genes)
    return float(np.floor(np.expm1(median - 3.0 * mad) + 1e-6))  # whole genes


def median_mad(values: NDArray[np.float64]) -> tuple[float, float]:
    """The median of ``values`` and their scaled MAD (1.4826 x the median absolute deviation,
    the standard deviation for normal data), as scater's ``isOutlier`` takes them."""
    median = float(np.median(values))
    return median, 1.4826 * float(np.median(np.abs(values - median)))


def failures(
    qc: QcValues,
    spec: QcSpec,
    dataset_id: Sequence[str] | pl.Series,
    assay: Sequence[str | None] | pl.Series,
    suspension_type: Sequence[str | None] | pl.Series,
) -> dict[str, NDArray[np.bool_]]:
    """Per filter, the cells it fails (a cell with no value for a filter passes it); empty
    when ``spec`` is off. The sequences are the manifest's columns. ``min_genes`` left unset
    is the assay's default, lowered to :func:`gene_floor` in a dataset whose cells detect few
    genes (a small panel, a shallow protocol), so that no dataset is filtered whole."""
    if not spec.enabled:
        return {}
    n = len(qc.n_counts)
    assays, assay_at = codes(assay)
    suspensions, suspension_at = codes(suspension_type)
    kind = assay_at.astype(np.int64) * len(suspensions) + suspension_at
    kinds, which = np.unique(kind, return_inverse=True)
    table = np.array(
        [
            defaults_for(assays[k // len(suspensions)], suspensions[k % len(suspensions)])
            for k in kinds
        ]
    ).reshape(-1, 2)
    pairs = table[which.reshape(n)] if n else np.zeros((0, 2))
    if spec.min_genes is None:
        min_genes = pairs[:, 0]
        names, at = codes(dataset_id)
        by_dataset = np.argsort(at, kind="stable")  # each dataset's cells, one pass
        ends = np.searchsorted(at[by_dataset], np.arange(len(names) + 1))
        floors = np.array(
            [gene_floor(qc.n_genes[by_dataset[a:b]]) for a, b in itertools.pairwise(ends)]
        )
        min_genes = np.minimum(min_genes, floors[at]) if n else min_genes
    else:
        min_genes = np.full(n, spec.min_genes)
    max_mito = pairs[:, 1] if spec.max_mito is None else np.full(n, spec.max_mito)
    has_counts = qc.n_genes >= 0
    out = {
        "min_genes": has_counts & (qc.n_genes < min_genes),
        "max_mito": np.nan_to_num(qc.mito_fraction, nan=0.0) > max_mito,
    }
    if spec.min_counts is not None:
        out["min_counts"] = has_counts & (qc.n_counts < spec.min_counts)
    if spec.doublets != "off":
        threshold = (
            qc.info.get("doublets", {}).get("threshold")
            if spec.doublets == "auto"
            else float(spec.doublets)
        )
        if threshold is not None:
            out["doublets"] = np.nan_to_num(qc.doublet_score, nan=0.0) > threshold
    return out

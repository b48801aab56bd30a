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

The doublet score is a kNN score against simulated doublets, as Scrublet computes it:
``SIM_RATIO`` simulated doublets per cell (at most ``MAX_SIMULATED`` in all, so a million cells
stay cheap), each the sum of the raw counts of two random cells of one counts source, projected
with the fitted PCA. A cell's score is the share of simulated doublets among its ``k`` nearest
neighbours in the union of cells and simulated doublets: its ``k`` nearest cells come from the
neighbour search the pool already ran, merged with one search against an index over the
simulated doublets only. ``doublets=auto`` calls a cell a doublet above the higher of two
thresholds (:func:`auto_threshold`): the one that splits the simulated doublets' own scores into
two classes (Otsu's rule: homotypic simulations score like singlets, heterotypic ones high),
and 3 scaled MADs above the median of the cells' own scores (scater's ``isOutlier``, as
:func:`gene_floor`): most cells are singlets, so a doublet is an outlier among them. Otsu's
split alone fell inside the bulk of the cells' scores wherever the simulations overlap the
cells: 10 % of the example corpus called where none is planted, 5.6 % of Baron's pancreas
(Scrublet: 0.2 % and 0.7 %; ``benchmarks/bench_doublets.py``). The score itself, not the
threshold, is why more singlets than Scrublet's are called at the same recall of planted
doublets (10 neighbours give steps of 0.1; a summed cell differs from a deep singlet by depth
in log-normalized space); a score on 24 neighbours of sums thinned to one cell's depth fixed
that but called whole rare types of a few cells (see benchmarks/README.md).

Where no model made the embedding (a stored ``obsm`` embedding), no cell gets a doublet score
and the report says why: the midpoint of two cells' embeddings, the only simulation left there,
was measured useless (on a corpus with 80 planted heterotypic doublets it caught 2 % of them at
its own threshold, and at any threshold flagged more singlets than doublets: same-type midpoints
sit in the dense centre of their type, and a summed cell's log-normalized profile is not the
midpoint of its two cells' profiles). Cells of sources without counts get no score either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate._compute.faiss_index import SEARCH_CHUNK, build_index
from scurate._data import id_table
from scurate._data.genes import gene_keys
from scurate._data.sources import GeneTable, Source, read_rows
from scurate.errors import OptionError

NO_MODEL = (
    "the embedding has no model to put simulated doublets in its space (a stored obsm"
    " embedding); midpoints of two cells were measured useless (see scurate._compute.qc)"
)
SIM_RATIO = 0.5  # simulated doublets per cell (1 and 0.25 measured worse)
MAX_SIMULATED = 50_000  # simulated doublets at most, whatever the pool
MIN_SIMULATED = 500  # a small pool still gets enough to see both modes
SIM_CHUNK = 4096  # pairs read and projected at a time
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
    dataset_id: Sequence[str],
    assay: Sequence[str | None],
    suspension_type: Sequence[str | None],
) -> dict[str, NDArray[np.bool_]]:
    """Per filter, the cells it fails (a cell with no value for a filter passes it); empty
    when ``spec`` is off. The sequences are the manifest's columns. ``min_genes`` left unset
    is the assay's default, lowered to :func:`gene_floor` in a dataset whose cells detect few
    genes (a small panel, a shallow protocol), so that no dataset is filtered whole."""
    if not spec.enabled:
        return {}
    n = len(qc.n_counts)
    both = np.char.add(
        np.char.add(np.asarray([a or "" for a in assay], dtype=str), "\x1f"),
        np.asarray([s or "" for s in suspension_type], dtype=str),
    )
    kinds, which = np.unique(both, return_inverse=True)
    table = np.array([defaults_for(*str(k).split("\x1f", 1)) for k in kinds]).reshape(-1, 2)
    pairs = table[which.reshape(n)] if n else np.zeros((0, 2))
    if spec.min_genes is None:
        min_genes = pairs[:, 0]
        names, at = np.unique(np.asarray(dataset_id, dtype=str), return_inverse=True)
        at = at.reshape(n)
        floors = np.array([gene_floor(qc.n_genes[at == d]) for d in range(len(names))])
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


# ---- doublet score ----

ProjectCounts = Callable[[int, sp.csr_matrix], NDArray[np.float32]]


def _pairs(
    sizes: NDArray[np.int64], n_sim: int, rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """``n_sim`` pairs of distinct cells, each of one source (chosen in proportion to its
    size): (source, row a, row b), rows within the source."""
    weights = np.where(sizes >= 2, sizes, 0).astype(np.float64)
    src = rng.choice(len(sizes), size=n_sim, p=weights / weights.sum())
    a = (rng.random(n_sim) * sizes[src]).astype(np.int64)
    b = (rng.random(n_sim) * (sizes[src] - 1)).astype(np.int64)
    b += b >= a  # distinct from a
    return src, a, b


def _simulate(
    sources: Sequence[Source],
    dims: int,
    pairs: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    project_counts: ProjectCounts,
) -> NDArray[np.float32]:
    """The simulated doublets in the pool's space: each pair's counts summed and projected."""
    src, a, b = pairs
    out = np.empty((len(src), dims), dtype=np.float32)
    for k, source in enumerate(sources):
        mine = np.flatnonzero(src == k)
        for lo in range(0, len(mine), SIM_CHUNK):
            part = mine[lo : lo + SIM_CHUNK]
            rows, where = np.unique(np.r_[a[part], b[part]], return_inverse=True)
            x = sp.csr_matrix(read_rows(source, rows), dtype=np.float32)
            both = x[where[: len(part)]] + x[where[len(part) :]]
            out[part] = project_counts(k, sp.csr_matrix(both))
    return out


def _exact_d2(
    q: NDArray[np.float32], base: NDArray[np.float32], labels: NDArray[np.int64]
) -> NDArray[np.float32]:
    """Squared distances from each row of ``q`` to its ``labels`` rows of ``base``, in float64
    and one fixed order (FAISS's own differ in the last bits with the number of threads)."""
    out = np.full(labels.shape, np.inf, dtype=np.float32)
    for j in range(labels.shape[1]):
        found = labels[:, j] >= 0
        diff = q[found].astype(np.float64) - base[labels[found, j]]
        out[found, j] = np.einsum("ij,ij->i", diff, diff)
    return out


def _share_simulated(
    real: NDArray[np.float32], sim: NDArray[np.float32], k: int
) -> NDArray[np.float32]:
    """Per row, the share of simulated neighbours among the ``k`` nearest of both lists (ties
    go to the real cells)."""
    both = np.concatenate([real, sim], axis=1)
    nearest = np.argsort(both, axis=1, kind="stable")[:, :k]
    share: NDArray[np.float32] = ((nearest >= real.shape[1]).sum(axis=1) / k).astype(np.float32)
    return share


def otsu(scores: NDArray[np.float32]) -> float:
    """The threshold that best splits ``scores`` into two classes (Otsu's rule: the largest
    between-class variance over the distinct values); a score above it is the upper class."""
    levels, counts = np.unique(scores, return_counts=True)
    if len(levels) < 2:
        return float(levels[-1]) if len(levels) else 1.0
    w = counts / counts.sum()
    w0 = np.cumsum(w)[:-1]
    mu = np.cumsum(w * levels)[:-1]
    total = float((w * levels).sum())
    between = (total * w0 - mu) ** 2 / (w0 * (1 - w0))
    return float(levels[int(np.argmax(between))])


OUTLIER_MADS = 3.0  # a cell's score this many scaled MADs above the cells' median is an outlier


def outlier_bound(scores: NDArray[np.float32]) -> float:
    """``OUTLIER_MADS`` scaled MADs (1.4826 MAD) above the median of ``scores`` (NaN left out);
    0 for no score."""
    values = scores[np.isfinite(scores)].astype(np.float64)
    if len(values) == 0:
        return 0.0
    median, mad = median_mad(values)
    return median + OUTLIER_MADS * mad


def auto_threshold(
    scores: NDArray[np.float32], sim_scores: NDArray[np.float32]
) -> tuple[float, str]:
    """``doublets=auto``'s threshold (see the module doc) and which bound set it."""
    split, bound = otsu(sim_scores), outlier_bound(scores)
    if bound > split:
        return bound, "median + 3 MADs of the cells' scores"
    return split, "Otsu's split of the simulated doublets' scores"


def doublet_scores(
    sources: Sequence[Source],
    values: NDArray[np.float32],
    knn_d2: NDArray[np.float32],
    pool_index: Any,
    *,
    project_counts: ProjectCounts | None,
    counts_ok: Sequence[bool],
    rng: np.random.Generator,
) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """Each cell's doublet score (NaN where not scored) and the report's record of it (see the
    module doc).

    ``knn_d2`` holds each cell's squared distances to its ``k`` nearest other cells (from the
    pool's neighbour search), ``pool_index`` the FAISS index over ``values`` it searched;
    ``counts_ok`` says which sources have raw counts.
    """
    n, k = knn_d2.shape
    scores = np.full(n, np.nan, dtype=np.float32)
    sizes = np.array([s.n_obs for s in sources], dtype=np.int64)
    counted = np.where(np.asarray(counts_ok, dtype=bool), sizes, 0)
    if project_counts is None:
        return scores, {"not_scored": NO_MODEL}
    if k < 1 or int(counted.max(initial=0)) < 2:
        return scores, {"not_scored": "no source has two cells with raw counts"}
    n_sim = int(min(MAX_SIMULATED, max(MIN_SIMULATED, round(SIM_RATIO * counted.sum()))))
    pairs = _pairs(counted, n_sim, rng)
    sim = _simulate(sources, values.shape[1], pairs, project_counts)
    sim_index, _ = build_index(sim, n_queries=n + n_sim)
    scored = np.repeat(np.asarray(counts_ok, dtype=bool), sizes)
    for lo in range(0, n, SEARCH_CHUNK):
        rows = np.flatnonzero(scored[lo : lo + SEARCH_CHUNK]) + lo
        if len(rows) == 0:
            continue
        q = np.ascontiguousarray(values[rows])
        _, labels = sim_index.search(q, k)
        scores[rows] = _share_simulated(knn_d2[rows], _exact_d2(q, sim, labels.astype(np.int64)), k)
    sim_scores = np.empty(n_sim, dtype=np.float32)
    for lo in range(0, n_sim, SEARCH_CHUNK):
        q = sim[lo : lo + SEARCH_CHUNK]
        own = np.arange(lo, lo + len(q))[:, None]
        _, real_labels = pool_index.search(q, k)
        _, sim_labels = sim_index.search(q, k + 1)
        sim_labels = sim_labels.astype(np.int64)
        sim_labels[sim_labels == own] = -1  # a simulated doublet is not its own neighbour
        sim_d2 = np.sort(_exact_d2(q, sim, sim_labels), axis=1)[:, :k]
        real_d2 = np.sort(_exact_d2(q, values, real_labels.astype(np.int64)), axis=1)
        sim_scores[lo : lo + len(q)] = _share_simulated(real_d2, sim_d2, k)
    threshold, set_by = auto_threshold(scores, sim_scores)
    info = {
        "method": "kNN share of simulated doublets (Scrublet-like)",
        "k": k,
        "n_simulated": n_sim,
        "simulation": "raw counts of two cells of one source summed, projected with the PCA",
        "simulation_cap": MAX_SIMULATED,
        "threshold": threshold,
        "threshold_rule": (
            "the higher of Otsu's split of the simulated doublets' own scores and the cells'"
            " median + 3 MADs"
        ),
        "threshold_set_by": set_by,
        "simulated_above_threshold": round(float((sim_scores > threshold).mean()), 4),
        "cells_above_threshold": int((np.nan_to_num(scores) > threshold).sum()),
    }
    return scores, info

"""Embeddings: a stored obsm entry, or PCA of log-normalized counts on the shared genes.

The default embedder does what a scanpy user would: scale every cell to 10,000 counts on
the shared genes, log1p, keep the most variable genes (as scanpy's
``highly_variable_genes(flavor="seurat")`` picks them: dispersion z-scored within 20
equal-width bins of mean expression), and fit PCA on a seeded sample of cells; then every
cell is projected chunk by chunk. The counts are read wherever a source keeps them (X,
``.raw.X`` or a layer: see :mod:`scurate._data.anndata_store`); a source with no counts
anywhere has its X taken as already normalized and used as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate import _backend as backend
from scurate._data import spill
from scurate._data.genes import GeneSpace, common_genes, onto_genes
from scurate._data.sources import COUNTS_CHECK_ROWS, Source, counts_from, finite_chunks
from scurate.errors import InputError

log = logging.getLogger(__name__)

TARGET_SUM = 1e4
N_TOP_GENES = 2000
N_COMPS = 50
FIT_CELLS = 20_000
N_BINS = 20

Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class Embedding:
    """One float32 row per cell of every source, in source order, and how it was made."""

    values: NDArray[np.float32]
    info: dict[str, Any] = field(default_factory=dict)
    n_counts: NDArray[np.float32] | None = None  # per cell, where X was read
    n_genes: NDArray[np.int32] | None = None
    # where a fitted model made the rows: project_counts(k, counts) puts raw count rows of
    # source k (its own genes, as read) in the same space; the doublet simulation uses it
    project_counts: Callable[[int, sp.csr_matrix], NDArray[np.float32]] | None = field(
        default=None, repr=False
    )


def _check_finite(
    values: NDArray[np.float32], source: Source, what: str, first_row: int = 0
) -> None:
    """One line naming the first row (``first_row`` is ``values``' first row in the source)
    with NaN or inf."""
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        row = first_row + int(bad[0])
        msg = (
            f"{source.path}: {what} row {row} (cell '{source.obs_names[row]}') has NaN or inf"
            f" ({len(bad)} such rows)"
        )
        raise InputError(msg)


def from_obsm(sources: Sequence[Source], key: str) -> Embedding:
    """Stack ``obsm[key]`` of every source (one source in memory at a time; the stack on disk
    where it is large, see :mod:`scurate._data.spill`); widths must agree and values be
    finite."""
    total = sum(s.n_obs for s in sources)
    out: spill.Builder | None = None
    at = 0
    read = backend.current().map(partial(_obsm_of, key=key), sources, label=_path_of)
    for source, values in zip(sources, read, strict=True):
        if out is None:
            out = spill.Builder((total, values.shape[1]), np.float32)
        elif values.shape[1] != out.shape[1]:
            msg = (
                f"{source.path}: obsm['{key}'] has {values.shape[1]} columns but "
                f"{sources[0].path} has {out.shape[1]}; embeddings must share one space"
            )
            raise InputError(msg)
        out.put(at, values)
        at += len(values)
        del values
    stacked = out.done() if out is not None else np.zeros((0, 0), dtype=np.float32)
    info = {"kind": "obsm", "obsm_key": key, "n_dims": int(stacked.shape[1])}
    return Embedding(stacked, info)


def _obsm_of(source: Source, key: str) -> NDArray[np.float32]:
    """``obsm[key]`` of one source, checked finite (a Ray task may run it)."""
    values = source.read_obsm(key)
    _check_finite(values, source, f"obsm['{key}']")
    return values


def _path_of(item: Any) -> str:
    """The source an item of per-source work reads, for a line about its task."""
    return str(getattr(item, "path", None) or getattr(getattr(item, "source", None), "path", item))


def _log_normalize(chunk: sp.csr_matrix, *, counts: bool) -> sp.csr_matrix:
    out = sp.csr_matrix(chunk, dtype=np.float32, copy=True)
    if not counts:
        return out
    totals = np.asarray(out.sum(axis=1)).ravel()
    scale = np.divide(TARGET_SUM, totals, out=np.zeros_like(totals), where=totals > 0)
    out.data *= np.repeat(scale, np.diff(out.indptr)).astype(np.float32)
    np.log1p(out.data, out=out.data)
    return out


LOG_SCALE_MAX = 50.0  # log1p of 10,000-scaled counts stays far below; expm1 overflows past 88


def check_log_scale(source: Source) -> None:
    """A source with no counts has its X used as log-normalized values; one line when its first
    rows show it is not (a value above 50: raw values with a negative one, CPM not logged,
    Pearson residuals), since the variable-gene step would overflow on it."""
    for _, chunk in finite_chunks(source, source.iter_x(chunk_rows=COUNTS_CHECK_ROWS)):
        data = chunk.data
        if len(data) and float(data.max()) > LOG_SCALE_MAX:
            negative = ", and negative ones" if float(data.min()) < 0 else ""
            msg = (
                f"{source.path}: X is neither raw counts nor log-normalized (values up to "
                f"{float(data.max()):g}{negative}); give `counts_layer` where the counts are, "
                "or `obsm_key` for a stored embedding"
            )
            raise InputError(msg)
        return


def _equal_width_bins(values: NDArray[np.float64], n_bins: int) -> NDArray[np.intp]:
    """The bin of each value among ``n_bins`` equal-width bins over its range, as
    ``pandas.cut(values, n_bins)`` makes them (right-closed; the lowest edge lowered by 0.1 % of
    the range so the minimum falls in the first bin; a range of one value widened by 0.1 %)."""
    low, high = float(values.min()), float(values.max())
    if low == high:
        low -= 0.001 * abs(low) if low != 0 else 0.001
        high += 0.001 * abs(high) if high != 0 else 0.001
        edges = np.linspace(low, high, n_bins + 1, endpoint=True)
    else:
        edges = np.linspace(low, high, n_bins + 1, endpoint=True)
        edges[0] -= (high - low) * 0.001
    return np.searchsorted(edges, values, side="left") - 1


def _binned_z(
    dispersion: NDArray[np.float64], bins: NDArray[np.intp], n_bins: int
) -> NDArray[np.float64]:
    """Dispersion z-scored within its bin (mean and sample std of the bin's non-NaN values).

    A bin whose std is undefined (one gene with a dispersion) divides by its mean instead and
    subtracts nothing, so its one gene scores 1, as scanpy does.
    """
    known = ~np.isnan(dispersion)
    b, d = bins[known], dispersion[known]
    count = np.bincount(b, minlength=n_bins).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = np.bincount(b, weights=d, minlength=n_bins) / count
        squares = np.bincount(b, weights=(d - avg[b]) ** 2, minlength=n_bins)
        dev = np.where(count > 1, np.sqrt(squares / (count - 1)), np.nan)
        single = np.isnan(dev)
        dev[single] = avg[single]
        avg[single] = 0.0
        out: NDArray[np.float64] = (dispersion - avg[bins]) / dev[bins]
    return out


def normalized_dispersion(sample: sp.csr_matrix) -> NDArray[np.float64]:
    """Each gene's normalized dispersion in a log1p-normalized ``sample`` (NaN where it has
    none), as ``scanpy.pp.highly_variable_genes(flavor="seurat")`` computes it.

    On ``expm1`` of the values: per-gene mean and variance (ddof 1), dispersion = var / mean (a
    zero mean taken as 1e-12, a zero dispersion as NaN), its log, and the log1p of the mean;
    means cut into :data:`N_BINS` equal-width bins; dispersions z-scored within their bin.
    """
    n_cells, n_genes = sample.shape
    x = sp.csr_matrix(sample)
    values = np.expm1(x.data)
    sums = np.bincount(x.indices, weights=values.astype(np.float64), minlength=n_genes)
    squares = np.bincount(
        x.indices, weights=(values * values).astype(np.float64), minlength=n_genes
    )
    mean = sums / n_cells
    var = squares / n_cells - mean**2
    if n_cells != 1:
        var *= n_cells / (n_cells - 1)
    mean[mean == 0] = 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = var / mean
        dispersion[dispersion == 0] = np.nan
        dispersion = np.log(dispersion)
    return _binned_z(dispersion, _equal_width_bins(np.log1p(mean), N_BINS), N_BINS)


def highly_variable(sample: sp.csr_matrix, n_top: int) -> NDArray[np.int64]:
    """Indices (ascending) of the most variable genes of a log1p-normalized ``sample``, as
    ``scanpy.pp.highly_variable_genes(flavor="seurat", n_top_genes=n_top)`` picks them.

    The genes kept are those whose :func:`normalized_dispersion` is at least the ``n_top``-th
    highest (NaN left out), so genes tied at that value are all kept. A sample where no gene
    has one (one cell, or nothing varies) keeps every expressed gene.
    """
    score = normalized_dispersion(sample)
    scored = np.sort(score[~np.isnan(score)])[::-1]
    if len(scored) == 0:
        x = sp.csr_matrix(sample)
        return np.unique(x.indices[x.data != 0]).astype(np.int64)
    cutoff = scored[min(max(n_top, 1), len(scored)) - 1]
    return np.flatnonzero(np.nan_to_num(score, nan=-np.inf) >= cutoff).astype(np.int64)


def pca_fit(
    sample: sp.csr_matrix, n_comps: int, rng: np.random.Generator, n_iter: int = 6
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Mean, components (genes x n_comps) and explained variance ratios of ``sample``.

    Randomized subspace iteration (Halko et al. 2011) with the centering kept implicit, so the
    sparse sample is never densified and no genes x genes matrix is decomposed.
    """
    n, h = sample.shape
    x = sample.astype(np.float64)
    mean = np.asarray(x.mean(axis=0)).ravel()
    ones = np.ones(n)

    def times(m: NDArray[np.float64]) -> NDArray[np.float64]:  # (X - 1 mean) @ m
        out: NDArray[np.float64] = np.asarray(x @ m) - np.outer(ones, mean @ m)
        return out

    def times_t(m: NDArray[np.float64]) -> NDArray[np.float64]:  # (X - 1 mean).T @ m
        out: NDArray[np.float64] = np.asarray(x.T @ m) - np.outer(mean, ones @ m)
        return out

    width = min(n_comps + 20, h, n)
    q, _ = np.linalg.qr(times(rng.standard_normal((h, width))))
    for _ in range(n_iter):
        z, _ = np.linalg.qr(times_t(q))
        q, _ = np.linalg.qr(times(z))
    _, sing, vt = np.linalg.svd(times_t(q).T, full_matrices=False)
    components = vt[:n_comps].T.copy()
    signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(components.shape[1])])
    components *= np.where(signs == 0, 1.0, signs)
    sq = np.asarray(x.multiply(x).sum(axis=0)).ravel()
    total_var = float(np.maximum(sq - n * mean**2, 0.0).sum())
    explained = sing[:n_comps] ** 2 / max(total_var, 1e-300)
    return mean, components, explained


@dataclass
class _SampleJob:
    """One source's share of the fit sample: which of its rows, and its genes onto the shared
    ones."""

    source: Source
    rows: NDArray[np.bool_]
    projection: sp.csr_matrix
    is_counts: bool


def _sampled(job: _SampleJob) -> sp.csr_matrix:
    """The sampled rows of one source, log-normalized on the shared genes (a task may run it:
    only the sampled rows come back)."""
    parts = [sp.csr_matrix((0, job.projection.shape[1]), dtype=np.float32)]
    for start, chunk in finite_chunks(job.source, job.source.iter_x()):
        rows = np.flatnonzero(job.rows[start : start + chunk.shape[0]])
        if len(rows):
            parts.append(_log_normalize(chunk[rows] @ job.projection, counts=job.is_counts))
    return sp.vstack(parts).tocsr()


@dataclass
class PcaModel:
    """What projects any source onto a fitted PCA: the gene list it was fitted on, its variable
    genes, loadings and center. Saved with a reference index so new cells meet it in one space."""

    genes: NDArray[np.object_]  # gene keys of the fitted space
    kind: str  # "ensembl" or "symbol"
    variable: NDArray[np.int64]  # indices into genes
    loadings: NDArray[np.float32]  # (len(variable), n_dims)
    center: NDArray[np.float32]  # (n_dims,)
    mean: NDArray[np.float32]  # (len(variable),) log-normalized mean of each variable gene
    info: dict[str, Any] = field(default_factory=dict)


def fit_pca(
    sources: Sequence[Source],
    *,
    rng: np.random.Generator,
    progress: Progress = _no_progress,
    n_comps: int = N_COMPS,
    n_top_genes: int = N_TOP_GENES,
    fit_cells: int = FIT_CELLS,
) -> PcaModel:
    """Fit the PCA of log-normalized counts on a seeded sample of the cells of ``sources``."""
    space: GeneSpace = common_genes(sources)
    counts = [counts_from(s) is not None for s in sources]
    for source, is_counts in zip(sources, counts, strict=True):
        if not is_counts:
            check_log_scale(source)
    sizes = np.array([s.n_obs for s in sources])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = int(offsets[-1])
    n_fit = min(total, fit_cells)
    picked = np.zeros(total, dtype=bool)
    picked[rng.choice(total, size=n_fit, replace=False)] = True

    run = backend.current()
    jobs = [
        _SampleJob(source, picked[offsets[k] : offsets[k + 1]], space.projections[k], counts[k])
        for k, source in enumerate(sources)
    ]
    parts: list[sp.csr_matrix] = []
    for k, part in enumerate(run.map(_sampled, jobs, label=_path_of)):
        parts.append(part)
        progress("embed: fit sample", int(offsets[k + 1]), total)
    sample = sp.vstack(parts).tocsr()
    genes = highly_variable(sample, n_top_genes)
    k_comps = max(1, min(n_comps, len(genes), n_fit - 1))
    mean, components, explained = pca_fit(sample[:, genes].tocsr(), k_comps, rng)
    info = {
        "kind": "pca",
        "gene_id_kind": space.kind,
        "n_genes_shared": len(space.genes),
        "genes_found_in": {s.dataset_id: w for s, w in zip(sources, space.found_in, strict=True)},
        "n_highly_variable": len(genes),
        "n_dims": k_comps,
        "fit_cells": n_fit,
        "explained_variance_ratio": [round(float(e), 6) for e in explained],
        "target_sum": TARGET_SUM,
    }
    info["genes_mapped_by_table"] = space.mapped([s.dataset_id for s in sources])
    return PcaModel(
        genes=space.genes,
        kind=space.kind,
        variable=genes,
        loadings=components.astype(np.float32),
        center=(mean @ components).astype(np.float32),
        mean=mean.astype(np.float32),
        info=info,
    )


@dataclass
class OnVariable:
    """One source read onto a model's variable genes: whether its X is raw counts, and which
    variable genes it did not measure."""

    source: Source
    model: PcaModel
    projection: sp.csr_matrix  # the source's genes onto the model's genes
    counts_from: str | None  # the matrix read as counts ("X", "raw"...); None: normalized X
    unmeasured: NDArray[np.bool_]  # over the model's variable genes

    @property
    def is_counts(self) -> bool:
        return self.counts_from is not None

    def shipped(self) -> OnVariable:
        """This part without its model, for a task that is given the model once."""
        return replace(self, model=None)  # type: ignore[arg-type]

    def chunks(self) -> Iterator[tuple[int, sp.csr_matrix, sp.csr_matrix]]:
        """``(first_row, chunk as read, chunk log-normalized on the variable genes)``."""
        for start, chunk in finite_chunks(self.source, self.source.iter_x()):
            normed = _log_normalize(chunk @ self.projection, counts=self.is_counts)
            yield start, chunk, normed[:, self.model.variable]


def on_variable(
    sources: Sequence[Source], model: PcaModel, space: GeneSpace | None = None
) -> list[OnVariable]:
    """Every source mapped onto the model's genes (``space``; by default found with
    :func:`scurate._data.genes.onto_genes`), ready to be read chunk by chunk."""
    space = space or onto_genes(sources, model.genes, model.kind)
    parts = []
    for source, projection in zip(sources, space.projections, strict=True):
        measured = np.zeros(len(model.genes), dtype=bool)
        measured[np.unique(projection.indices)] = True
        unmeasured = ~measured[model.variable]
        found = counts_from(source)
        if found is None:
            check_log_scale(source)
        parts.append(OnVariable(source, model, projection, found, unmeasured))
    return parts


def project(
    sources: Sequence[Source],
    model: PcaModel,
    *,
    space: GeneSpace | None = None,
    progress: Progress = _no_progress,
) -> Embedding:
    """Every cell of ``sources`` on the model's components, chunk by chunk.

    ``space`` maps the sources onto the model's genes; by default found with
    :func:`scurate._data.genes.onto_genes`. A variable gene a source did not measure is taken at
    the model's mean (it moves the cell nowhere), not at zero, which would read as "not
    expressed" and push every cell of that source away from the reference.
    """
    space = space or onto_genes(sources, model.genes, model.kind)
    sizes = np.array([s.n_obs for s in sources])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = int(offsets[-1])
    values = spill.Builder((total, model.loadings.shape[1]), np.float32)
    n_counts = np.empty(total, dtype=np.float32)
    n_genes = np.empty(total, dtype=np.int32)
    parts = on_variable(sources, model, space)
    run = backend.current()
    if run.in_process:  # each chunk written where it belongs as it is read
        for k, part in enumerate(parts):
            at = int(offsets[k])

            def write(start: int, block: Any, counts: Any, genes: Any, at: int = at) -> None:
                n_counts[at + start : at + start + len(block)] = counts
                n_genes[at + start : at + start + len(block)] = genes
                values.put(at + start, block)
                progress("embed: project", at + start + len(block), total)

            _project_part(part, write)
    else:  # a task per source, the model shipped once; blocks written in source order
        done = run.map(
            partial(_projected, model=model), [p.shipped() for p in parts], label=_path_of
        )
        for k, (block, counts, genes) in enumerate(done):
            at = int(offsets[k])
            n_counts[at : at + len(block)], n_genes[at : at + len(block)] = counts, genes
            values.put(at, block)
            del block
            progress("embed: project", int(offsets[k + 1]), total)
    normalized = [p.source.dataset_id for p in parts if not p.is_counts]
    if normalized:
        log.info("X used as already normalized in: %s", ", ".join(normalized))
    missing = {p.source.dataset_id: int(p.unmeasured.sum()) for p in parts}
    info = {
        **model.info,
        "genes_found_in": {s.dataset_id: w for s, w in zip(sources, space.found_in, strict=True)},
        "counts_from": {p.source.dataset_id: p.counts_from for p in parts},
        "normalized_sources": normalized,
        "variable_genes_missing": {k: v for k, v in missing.items() if v},
    }
    info["genes_mapped_by_table"] = space.mapped([s.dataset_id for s in sources])
    return Embedding(values.done(), info, n_counts, n_genes, _projector(parts, model))


def _project_part(part: OnVariable, write: Callable[[int, Any, Any, Any], None]) -> None:
    """Every chunk of ``part`` on the model's components: ``write(first_row, block, n_counts,
    n_genes)``, rows counted within the source."""
    model, unmeasured = part.model, part.unmeasured
    shift = model.center - model.mean[unmeasured] @ model.loadings[unmeasured]
    for start, chunk, variable in part.chunks():
        n_counts = np.asarray(chunk.sum(axis=1)).ravel()
        n_genes = np.diff(sp.csr_matrix(chunk > 0).indptr)
        block = np.asarray(variable @ model.loadings - shift, dtype=np.float32)
        _check_finite(block, part.source, "X", first_row=start)
        write(start, block, n_counts, n_genes)


def _projected(
    part: OnVariable, model: PcaModel
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int32]]:
    """In a task: one source's block of the embedding, its counts and genes per cell."""
    part = replace(part, model=model)
    n = part.source.n_obs
    values = np.empty((n, model.loadings.shape[1]), dtype=np.float32)
    n_counts = np.empty(n, dtype=np.float32)
    n_genes = np.empty(n, dtype=np.int32)

    def write(start: int, block: Any, counts: Any, genes: Any) -> None:
        stop = start + len(block)
        values[start:stop], n_counts[start:stop], n_genes[start:stop] = block, counts, genes

    _project_part(part, write)
    return values, n_counts, n_genes


def _projector(
    parts: Sequence[OnVariable], model: PcaModel
) -> Callable[[int, sp.csr_matrix], NDArray[np.float32]]:
    """Raw count rows of source ``k`` onto the model, as :func:`project` puts that source's
    cells (log-normalized on the shared genes; an unmeasured variable gene at the model's
    mean)."""

    def run(k: int, counts: sp.csr_matrix) -> NDArray[np.float32]:
        part = parts[k]
        unmeasured = part.unmeasured
        shift = model.center - model.mean[unmeasured] @ model.loadings[unmeasured]
        normed = _log_normalize(counts @ part.projection, counts=True)[:, model.variable]
        out: NDArray[np.float32] = np.asarray(normed @ model.loadings - shift, dtype=np.float32)
        return out

    return run


def pca_embedding(
    sources: Sequence[Source],
    *,
    rng: np.random.Generator,
    progress: Progress = _no_progress,
    **fit: int,
) -> Embedding:
    """PCA of log-normalized counts on the genes all sources share (see the module doc);
    ``fit`` takes :func:`fit_pca`'s ``n_comps``, ``n_top_genes`` and ``fit_cells``."""
    model = fit_pca(sources, rng=rng, progress=progress, **fit)
    space = common_genes(sources)
    embedding = project(sources, model, space=space, progress=progress)
    embedding.info.pop("variable_genes_missing", None)
    return embedding

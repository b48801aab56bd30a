"""Exact duplicates: the same cells deposited twice, found on their raw counts across sources.

Every cell's nonzero (gene, count) pairs are hashed in the native core while X streams by in
chunks, on the genes that every counts source measured (so a file filtered to a subset of
another's genes, or with its genes in another order, hashes alike). Genes meet as Ensembl ids
when every source has them, else as symbols, else as Ensembl ids with the symbols of
symbol-only sources translated through the gene table
(:func:`scurate._data.genes.meeting_keys`); a key that names two columns of any source is left
out, since its counts cannot be told apart. Rows whose hashes match are then compared
themselves, on every gene both of their files measured: a hash collision, or two cells that
differ on a gene only their two files share, is never merged.

A cell is called a duplicate only when it has at least ``MIN_GENES`` nonzero genes on the
hashed space. Below that, identical rows are as likely to be two near-empty droplets of ambient
RNA (a handful of counts on the most abundant transcripts) as one cell deposited twice: with 5
counts spread over the top 20 ambient genes, two droplets of one run match by chance far more
often than with 20 detected genes, where the count of possible rows is astronomically larger
than any corpus. Typical QC already drops cells under 200 genes; 20 keeps the rule safe for
lightly filtered data without claiming more than the counts can show.

Which copy is kept (its ``cell_id`` is written to ``exact_dup_of`` of the others): the copy in
the source that measured the most genes (it carries the most information), then the larger
dataset (a superset atlas keeps its cells and its per-lineage subsets are marked), then the
earlier source in the order the sources were opened (folders are searched in sorted order),
then the lower row.

The counts are read wherever a source keeps them (X, ``.raw.X`` or a layer; the report says
which under ``counts_from``). Sources with no counts anywhere (X normalized, nothing else) are
skipped, and so is a source whose counts turn out to hold values other than non-negative whole
numbers past the rows looked at when it was opened; the report lists them with the reason.

The same read gives each cell's QC values (total counts, detected genes, mitochondrial counts;
see :mod:`scurate._compute.qc`) from one native call per chunk, on all of the source's genes;
cells of a source with no counts, or skipped so, get none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate import _backend as backend
from scurate import _core
from scurate._compute.qc import mito_columns
from scurate._data.genes import GeneKeys, gene_keys, meeting_keys
from scurate._data.sources import Source, counts_from, finite_chunks, prefetched, read_rows
from scurate.errors import InputError

MIN_GENES = 20
NO_COUNTS = "no integer counts in X, .raw.X or layers['counts'] (X is normalized)"
# rows read and hashed at a time: a few MB, so the hash reads them while they are in cache
HASH_CHUNK_ROWS = 512

Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class CountsQc:
    """Per pool row, read with the hashes: total counts and mitochondrial counts (NaN where the
    source has no counts), detected genes (-1 there), and where each source's mito genes were
    found."""

    n_counts: NDArray[np.float64]
    n_genes: NDArray[np.int64]
    mito_counts: NDArray[np.float64]
    mito_from: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int) -> CountsQc:
        return cls(np.full(n, np.nan), np.full(n, -1, dtype=np.int64), np.full(n, np.nan))


@dataclass
class ExactDuplicates:
    """Per pool row, the pool row of its kept copy (-1 where it is no copy), the QC values read
    in the same pass, and details."""

    dup_of: NDArray[np.int64]
    info: dict[str, Any] = field(default_factory=dict)
    qc: CountsQc | None = None


@dataclass
class _Space:
    """Genes of each source on one union key space, and the hashed (shared) part of it."""

    kind: str
    union_size: int
    columns: list[NDArray[np.int64]]  # per source: union id of each column, -1 if left out
    measured: list[NDArray[np.bool_]]  # per source: which union ids it measured
    hashed: NDArray[np.int64]  # union ids every participating source measured
    n_ambiguous: int


def _key_space(keys: Sequence[GeneKeys]) -> tuple[str, list[NDArray[np.object_]]] | None:
    """The kind sources meet on (ids and symbols meet through the gene table), and each one's
    key per column; None where some source's genes cannot be keyed so."""
    kind, keyed = meeting_keys(keys)
    if any(k is None for k in keyed):
        return None
    return kind, [k.keys for k in keyed if k is not None]


def _gene_space(kind: str, per_source: Sequence[NDArray[np.object_]]) -> _Space:
    ambiguous: set[str] = set()
    for keys in per_source:
        seen: set[str] = set()
        for key in keys:
            if key is None:
                continue
            if key in seen:
                ambiguous.add(key)
            seen.add(key)
    union = sorted({k for keys in per_source for k in keys if k is not None} - ambiguous)
    position = {k: i for i, k in enumerate(union)}
    columns, measured = [], []
    for keys in per_source:
        cols = np.array([position.get(k, -1) if k is not None else -1 for k in keys], np.int64)
        mask = np.zeros(len(union), dtype=bool)
        mask[cols[cols >= 0]] = True
        columns.append(cols)
        measured.append(mask)
    shared = np.logical_and.reduce(measured) if measured else np.zeros(0, bool)
    return _Space(kind, len(union), columns, measured, np.flatnonzero(shared), len(ambiguous))


QcWrite = Callable[[int, tuple[Any, Any, Any]], None]


def _hash_source(
    source: Source,
    gene_map: NDArray[np.int32] | None,
    mito: NDArray[np.bool_],
    write_qc: QcWrite,
    rows_done: Callable[[int], None],
) -> tuple[NDArray[np.uint64], NDArray[np.uint32], int]:
    """Hash every row on ``gene_map`` (None: QC values only) and give each chunk's QC values
    (counts, genes, mito counts; ``mito`` marks the source's mito columns) to
    ``write_qc(first_row, values)``, rows counted within the source."""
    hashes = np.empty(source.n_obs, dtype=np.uint64)
    nnz = np.empty(source.n_obs, dtype=np.uint32)
    nonintegral = 0
    for start, chunk in prefetched(finite_chunks(source, source.iter_x(HASH_CHUNK_ROWS))):
        stop = start + chunk.shape[0]
        indptr = chunk.indptr.astype(np.int64, copy=False)
        indices, data = np.ascontiguousarray(chunk.indices), np.ascontiguousarray(chunk.data)
        if gene_map is not None:
            h, n, bad = _core.hash_count_rows(indptr, indices, data, gene_map)
            hashes[start:stop], nnz[start:stop] = h, n
            nonintegral += bad
        write_qc(start, _core.qc_rows(indptr, indices, data, mito))
        rows_done(stop)
    return hashes, nnz, nonintegral


@dataclass
class _HashJob:
    """One source's share of the pass, as a task gets it: the source, how its columns map onto
    the hashed genes (None: QC values only) and which are mitochondrial."""

    source: Source
    gene_map: NDArray[np.int32] | None
    mito: NDArray[np.bool_]


def _hashed(job: _HashJob) -> tuple[Any, Any, int, CountsQc]:
    """In a task: :func:`_hash_source` of one source, its QC values gathered per source."""
    qc = CountsQc.empty(job.source.n_obs)

    def write_qc(start: int, values: tuple[Any, Any, Any]) -> None:
        stop = start + len(values[0])
        qc.n_counts[start:stop], qc.n_genes[start:stop], qc.mito_counts[start:stop] = values

    hashes, nnz, bad = _hash_source(job.source, job.gene_map, job.mito, write_qc, _no_rows)
    return hashes, nnz, bad, qc


def _no_rows(stop: int) -> None:
    return None


def _hash_all(
    jobs: Sequence[_HashJob],
    offsets: Sequence[int],
    qc: CountsQc,
    progress: Progress,
) -> Iterator[tuple[NDArray[np.uint64], NDArray[np.uint32], int]]:
    """:func:`_hash_source` of every job (its first pool row at ``offsets``), the QC values
    written into the pool's ``qc``: in this process chunk by chunk, as read; on another backend
    a task per source, written in source order as each is done."""
    total = int(sum(j.source.n_obs for j in jobs))
    run, done = backend.current(), 0
    if run.in_process:
        for job, offset in zip(jobs, offsets, strict=True):

            def write_qc(start: int, values: tuple[Any, Any, Any], at: int = offset) -> None:
                where = slice(at + start, at + start + len(values[0]))
                qc.n_counts[where], qc.n_genes[where], qc.mito_counts[where] = values

            def rows_done(stop: int, before: int = done) -> None:
                progress("duplicates: hash", before + stop, total)

            yield _hash_source(job.source, job.gene_map, job.mito, write_qc, rows_done)
            done += job.source.n_obs
        return
    results = run.map(_hashed, jobs, label=lambda j: str(j.source.path))
    for job, offset, (hashes, nnz, bad, got) in zip(jobs, offsets, results, strict=True):
        where = slice(offset, offset + job.source.n_obs)
        qc.n_counts[where], qc.n_genes[where] = got.n_counts, got.n_genes
        qc.mito_counts[where] = got.mito_counts
        done += job.source.n_obs
        progress("duplicates: hash", done, total)
        yield hashes, nnz, bad


def _qc_only(
    sources: Sequence[Source],
    taking: Sequence[int],
    offsets: NDArray[np.int64],
    qc: CountsQc,
    masks: Sequence[NDArray[np.bool_]],
    progress: Progress,
) -> None:
    """The QC values of the counts sources where no hashing is possible."""
    jobs = [_HashJob(sources[k], None, masks[j]) for j, k in enumerate(taking)]
    for _ in _hash_all(jobs, [int(offsets[k]) for k in taking], qc, progress):
        pass


def _union_rows(
    source: Source, rows: NDArray[np.int64], columns: NDArray[np.int64], width: int
) -> sp.csr_matrix:
    """The given rows of ``source`` (sorted) on the union key space, as float64 CSR."""
    keep = columns >= 0
    projection = sp.csr_matrix(
        (np.ones(int(keep.sum())), (np.flatnonzero(keep), columns[keep])),
        shape=(len(columns), width),
    )
    return sp.csr_matrix(read_rows(source, rows), dtype=np.float64) @ projection


def find_exact_duplicates(
    sources: Sequence[Source],
    *,
    min_genes: int = MIN_GENES,
    progress: Progress = _no_progress,
) -> ExactDuplicates:
    """Exact copies among the cells of ``sources`` (see the module doc for the rules)."""
    if min_genes < 1:
        msg = f"dup_min_genes={min_genes}: must be at least 1"
        raise InputError(msg)
    sizes = np.array([s.n_obs for s in sources], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    dup_of = np.full(int(offsets[-1]), -1, dtype=np.int64)
    skipped: dict[str, str] = {}
    taking: list[int] = []
    where: dict[str, str | None] = {}  # dataset -> the matrix read as its counts
    for k, source in enumerate(sources):
        try:
            where[source.dataset_id] = counts_from(source)
        except InputError as exc:
            skipped[source.dataset_id] = str(exc)
            continue
        if where[source.dataset_id] is not None:
            taking.append(k)
        else:
            skipped[source.dataset_id] = NO_COUNTS
    info: dict[str, Any] = {
        "min_genes": min_genes,
        "counts_from": where,
        "skipped_sources": skipped,
    }
    tables = [sources[k].read_genes() for k in taking]
    keys = [gene_keys(t) for t in tables]
    qc = CountsQc.empty(len(dup_of))
    masks = []
    for k, table in zip(taking, tables, strict=True):
        mask, qc.mito_from[sources[k].dataset_id] = mito_columns(table)
        masks.append(np.ascontiguousarray(mask, dtype=bool))
    chosen = _key_space(keys) if taking else None
    if chosen is None:
        if taking:
            info["not_searched"] = (
                "the counts sources share no kind of gene identifier, even through the gene table"
            )
        _qc_only(sources, taking, offsets, qc, masks, progress)
        info.update(n_duplicates=0, n_candidates=0, n_hash_matches_rejected=0)
        return ExactDuplicates(dup_of, info, qc)
    space = _gene_space(*chosen)
    hashed_id = np.full(space.union_size, -1, dtype=np.int32)
    hashed_id[space.hashed] = np.arange(len(space.hashed), dtype=np.int32)

    rows_g, hash_g, nnz_g, src_g = [], [], [], []
    jobs = [
        _HashJob(
            sources[k],
            np.where(space.columns[j] >= 0, hashed_id[space.columns[j]], -1).astype(np.int32),
            masks[j],
        )
        for j, k in enumerate(taking)
    ]
    hashed = _hash_all(jobs, [int(offsets[k]) for k in taking], qc, progress)
    for j, (k, (hashes, nnz, nonintegral)) in enumerate(zip(taking, hashed, strict=True)):
        source = sources[k]
        if nonintegral:
            skipped[source.dataset_id] = (
                f"{where[source.dataset_id]} is not integer counts ({nonintegral} values are"
                " negative or not whole)"
            )
            at = slice(int(offsets[k]), int(offsets[k + 1]))  # no counts: no QC values either
            qc.n_counts[at], qc.n_genes[at], qc.mito_counts[at] = np.nan, -1, np.nan
            continue
        rows_g.append(np.arange(offsets[k], offsets[k + 1], dtype=np.int64))
        hash_g.append(hashes)
        nnz_g.append(nnz)
        src_g.append(np.full(source.n_obs, j, dtype=np.int64))
    info.update(
        gene_id_kind=space.kind,
        n_genes_hashed=len(space.hashed),
        n_ambiguous_genes_left_out=space.n_ambiguous,
        sources_searched=[
            sources[k].dataset_id for k in taking if sources[k].dataset_id not in skipped
        ],
    )
    if not rows_g:
        info.update(n_duplicates=0, n_candidates=0, n_hash_matches_rejected=0)
        return ExactDuplicates(dup_of, info, qc)
    rows = np.concatenate(rows_g)
    hashes = np.concatenate(hash_g)
    nnz = np.concatenate(nnz_g)
    src = np.concatenate(src_g)
    eligible = nnz >= min_genes
    info["n_below_min_genes"] = int((~eligible).sum())
    rows, hashes, src = rows[eligible], hashes[eligible], src[eligible]
    n_measured = np.array([int(m.sum()) for m in space.measured])
    n_obs = np.array([sources[k].n_obs for k in taking])
    # sort by hash, then by the keep rule, so the first row of each run of equal hashes is kept
    order = np.lexsort((rows, src, -n_obs[src], -n_measured[src], hashes))
    rows, hashes, src = rows[order], hashes[order], src[order]
    starts = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
    run_len = np.diff(np.r_[starts, len(hashes)])
    in_group = np.repeat(run_len >= 2, run_len)
    cand_rows, cand_src = rows[in_group], src[in_group]
    cand_run = np.repeat(np.arange(len(starts)), run_len)[in_group]
    info["n_candidates"] = len(cand_rows)
    rejected = _confirm(sources, taking, space, offsets, cand_rows, cand_src, cand_run, dup_of)
    info["n_hash_matches_rejected"] = rejected
    info["n_duplicates"] = int((dup_of >= 0).sum())
    return ExactDuplicates(dup_of, info, qc)


def _confirm(
    sources: Sequence[Source],
    taking: Sequence[int],
    space: _Space,
    offsets: NDArray[np.int64],
    rows: NDArray[np.int64],
    src: NDArray[np.int64],
    run: NDArray[np.int64],
    dup_of: NDArray[np.int64],
) -> int:
    """Compare candidate rows to the kept row of their hash run; fill ``dup_of``.

    Rows of a run that differ from its kept row form a new run (their own kept row first) and
    are compared again, until no run has two rows left. Returns how many comparisons found
    equal hashes but different rows.
    """
    if len(rows) == 0:
        return 0
    position = np.argsort(rows)
    sorted_rows = rows[position]
    parts = []
    for j, k in enumerate(taking):
        mine = sorted_rows[(sorted_rows >= offsets[k]) & (sorted_rows < offsets[k + 1])]
        if len(mine):
            parts.append(
                _union_rows(sources[k], mine - offsets[k], space.columns[j], space.union_size)
            )
    table = sp.vstack(parts).tocsr()  # candidate rows in increasing pool row

    def content(r: NDArray[np.int64]) -> sp.csr_matrix:
        return table[np.searchsorted(sorted_rows, r)]

    rejected = 0
    while len(rows):
        first = np.r_[True, run[1:] != run[:-1]]
        kept_at = np.maximum.accumulate(np.where(first, np.arange(len(rows)), 0))
        others = ~first
        a, b = rows[kept_at[others]], rows[others]
        sa, sb = src[kept_at[others]], src[others]
        same = np.zeros(len(a), dtype=bool)
        for pa, pb in {(int(x), int(y)) for x, y in zip(sa, sb, strict=True)}:
            pick = (sa == pa) & (sb == pb)
            mask = sp.diags((space.measured[pa] & space.measured[pb]).astype(np.float64))
            diff = (content(a[pick]) - content(b[pick])) @ mask
            diff.eliminate_zeros()
            same[pick] = np.diff(diff.indptr) == 0
        dup_of[b[same]] = a[same]
        left = np.flatnonzero(others)[~same]
        rejected += len(left)
        rows, src, run = rows[left], src[left], run[left]
        if len(rows) == 0:
            break
        keep = np.r_[run[1:] == run[:-1], False] | np.r_[False, run[1:] == run[:-1]]
        rows, src, run = rows[keep], src[keep], run[keep]
    return rejected

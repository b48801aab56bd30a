"""Minibatches of a selection, read straight from the source files, for a trainer.

``CellLoader(out_dir)`` yields :class:`Batch` objects: the selected cells' rows of X on one
gene order, with cell ids, canonical labels, weights and selection ranks. Cells are read in
blocks of rows that lie close together in their source (one ``read_rows`` per source per
buffer), and shuffled within a buffer of several blocks, as annbatch and TileDB-SOMA-ML do:
memory holds one buffer (and the next, read ahead in a thread), never a whole matrix.

An epoch draws its cells by ``sampling`` (see ``_feed/sampling.py``); ranks take every
``world_size``-th cell of the draw, DataLoader workers every n-th batch of their rank's, so an
epoch's batches are the same whatever the number of workers.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import NDArray

from scurate._data import manifest as mf
from scurate._data.genes import (
    ENSEMBL,
    GeneSpace,
    as_kind,
    common_genes,
    gene_keys,
    onto_genes,
)
from scurate._data.memory import MEMORY_PREFIX
from scurate._data.sources import (
    ReadOptions,
    Source,
    accepts_read,
    discover,
    fingerprint,
    read_rows,
    takes,
)
from scurate._engine.options import check_seed
from scurate._engine.outputs import check_complete
from scurate._feed.sampling import Draw, parse_sampling
from scurate.errors import InputError, OptionError

BLOCK_SIZE = 64  # cells read together from one source (neighbouring rows of the file)
BUFFER_BLOCKS = 16  # blocks shuffled together: the memory a loader holds is one buffer


@dataclass(frozen=True)
class Batch:
    """One minibatch. Row ``i`` of ``X`` is cell ``cell_id[i]``."""

    X: sp.csr_matrix  # float32, columns in ``CellLoader.genes`` order
    cell_id: NDArray[np.object_]
    labels: dict[str, NDArray[np.object_]]  # canonical label columns (None where unmapped)
    weight: NDArray[np.float32]
    selection_rank: NDArray[np.int64]
    dataset_id: NDArray[np.object_]
    row: NDArray[np.int64]  # the cell's row in its source file

    def __len__(self) -> int:
        return int(self.X.shape[0])


@dataclass(frozen=True)
class _Cells:
    """A loader's cells in priority order, as numpy columns; ``source`` indexes its sources."""

    source: NDArray[np.int64]
    row: NDArray[np.int64]
    cell_id: NDArray[np.object_]
    dataset_id: NDArray[np.object_]
    weight: NDArray[np.float32]
    selection_rank: NDArray[np.int64]
    labels: dict[str, NDArray[np.object_]]

    def take(self, at: NDArray[np.int64] | slice) -> _Cells:
        return _Cells(
            source=self.source[at],
            row=self.row[at],
            cell_id=self.cell_id[at],
            dataset_id=self.dataset_id[at],
            weight=self.weight[at],
            selection_rank=self.selection_rank[at],
            labels={c: v[at] for c, v in self.labels.items()},
        )


def _manifest_path(selection: str | os.PathLike[str]) -> Path:
    """The manifest of a selection: ``manifest.parquet`` of a complete output folder (its
    report.json there and matching it), or a manifest file given as such."""
    path = Path(selection)
    if path.is_dir():
        found = path / "manifest.parquet"
        if not found.is_file():
            msg = f"{path}: no manifest.parquet in this folder (is it an output of select?)"
            raise InputError(msg)
        check_complete(path)
        return found
    if not path.is_file():
        msg = f"{path}: no such selection folder or manifest"
        raise InputError(msg)
    if (path.parent / "report.json").is_file() and path.name == "manifest.parquet":
        check_complete(path.parent)
    return path


def _selected(path: Path, budget: int | None) -> pl.DataFrame:
    frame = (
        mf.read_manifest(path)
        .filter(pl.col("selected").fill_null(False))
        .sort("selection_rank")
        .with_row_index("position")
    )
    if frame.is_empty():
        msg = f"{path}: the manifest has no selected cells"
        raise InputError(msg)
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            msg = f"budget={budget!r}: must be a positive number of cells"
            raise OptionError(msg)
        if budget > frame.height:
            msg = f"budget={budget} is larger than the selection in {path} ({frame.height} cells)"
            raise OptionError(msg)
        frame = frame.head(budget)
    return frame


def _where(names: Sequence[str], manifest: Path, root: str | os.PathLike[str] | None) -> list[Path]:
    """The paths of the sources the manifest names (absolute, without ``..``: a manifest is not
    trusted to lead elsewhere). With ``root``, the sources were moved together: each is looked
    for under ``root`` at its path relative to the folder all of them shared (for one source,
    its folder)."""
    paths = []
    for name in names:
        path = Path(name)
        if name.startswith(MEMORY_PREFIX):
            msg = (
                f"{manifest}: selected from an AnnData in memory ('{name}'), which no file holds; "
                "use the selection's to_anndata() in the session that made it"
            )
            raise InputError(msg)
        if ".." in path.parts:
            msg = (
                f"{manifest}: a row's source '{name}' has '..' in its path; "
                "give the source's absolute path (as scurate writes it)"
            )
            raise InputError(msg)
        paths.append(path)
    if root is None:
        return paths
    base = Path(os.path.commonpath(paths))
    if len(set(paths)) == 1:
        base = base.parent
    return [Path(root).resolve() / p.relative_to(base) for p in paths]


def _report(manifest: Path) -> dict[str, Any]:
    """The report.json beside the manifest (already checked to match it), or {}."""
    try:
        report = json.loads((manifest.parent / "report.json").read_text())
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def _read_options(report: dict[str, Any]) -> ReadOptions:
    """How the selection read its sources (``counts_layer``, ``obs_filter``); the defaults
    where the report does not say."""
    params = report.get("parameters", {})
    if not isinstance(params, dict):
        return ReadOptions()
    return ReadOptions(counts_layer=params.get("counts_layer"), obs_filter=params.get("obs_filter"))


def _unchanged(name: str, path: Path, report: dict[str, Any], manifest: Path) -> None:
    """A source still holds what the selection read: its size and sampled hash as report.json
    recorded them (a source moved with ``root`` keeps them; its modification time may not)."""
    recorded = report.get("source_files", {})
    before = recorded.get(name) if isinstance(recorded, dict) else None
    if not isinstance(before, dict):
        return  # a selection made before scurate recorded them, or from memory
    now = fingerprint(path)
    if now != before:
        what = (
            f"{before.get('bytes')} bytes then, {now['bytes']} now"
            if before.get("bytes") != now["bytes"]
            else "same size, other content"
        )
        msg = f"{path}: changed since the selection in {manifest} ({what}); select again"
        raise InputError(msg)


def _pool_joinids(manifest: Path) -> dict[str, NDArray[np.int64]]:
    """Per source, the ``soma_joinid`` of every pool cell in row order, for the sources whose
    cells all have one: a TileDB-SOMA source is opened on exactly these cells, so its rows are
    the manifest's whatever obs filter chose them. The manifest is read once for all sources."""
    pool = mf.scan_manifest(manifest).select("source", "row", "soma_joinid").collect()
    out: dict[str, NDArray[np.int64]] = {}
    for (name,), part in pool.group_by(["source"]):
        joinids = part.sort("row")["soma_joinid"]
        if joinids.null_count() == 0:
            out[str(name)] = joinids.to_numpy().astype(np.int64)
    return out


def _open(
    frame: pl.DataFrame, manifest: Path, root: str | os.PathLike[str] | None
) -> dict[str, Source]:
    """Open each source of the selection (by the manifest's name for it), checking it still
    holds the rows it held."""
    from scurate._engine import stages
    from scurate._plugins.registry import discover as plugins

    readers = stages.source_readers(plugins())
    report = _report(manifest)
    read = _read_options(report)
    groups = list(frame.group_by(["source", "dataset_id"], maintain_order=True))
    pool_joinids = (
        _pool_joinids(manifest) if frame["soma_joinid"].null_count() < frame.height else {}
    )
    paths = _where([str(key[0]) for key, _ in groups], manifest, root)
    sources: dict[str, Source] = {}
    for ((name, dataset_id), part), path in zip(groups, paths, strict=True):
        if not path.exists():
            msg = f"{path}: source not found (moved since the selection in {manifest}?"
            msg += " root= names the folder the sources were moved to)" if root is None else ")"
            raise InputError(msg)
        try:
            found = discover([path], readers)
        except InputError:
            found = []
        if len(found) != 1 or found[0][0] != path:
            msg = (
                f"{manifest}: a row's source '{name}' is not one source a reader opens "
                f"(readers: {', '.join(readers)})"
            )
            raise InputError(msg)
        _unchanged(str(name), path, report, manifest)
        opener = readers[found[0][1]]
        joinids = pool_joinids.get(str(name))
        extra: dict[str, Any] = {}
        if joinids is not None and takes(opener, "soma_joinids"):
            extra["soma_joinids"] = joinids  # exactly the pool's cells, whatever filtered them
        source: Source = (
            opener(path, str(dataset_id), read=read, **extra)
            if accepts_read(opener)
            else opener(path, str(dataset_id))
        )
        rows = part["row"].to_numpy().astype(np.int64)
        if rows.max() >= source.n_obs:
            msg = f"{path}: has {source.n_obs} cells, the selection names row {rows.max()}"
            raise InputError(msg + " (the file changed since the selection)")
        expected = mf.cell_ids(str(dataset_id), source.obs_names[rows])
        differ = np.flatnonzero(expected != part["cell_id"].to_numpy().astype(str))
        if len(differ):
            i = int(differ[0])
            msg = (
                f"{path}: row {rows[i]} holds '{source.obs_names[rows[i]]}', the selection "
                f"says '{part['cell_id'][i]}' (the file changed since the selection)"
            )
            raise InputError(msg)
        sources[str(name)] = source
    return sources


def _gene_space(sources: Sequence[Source], genes: str | Sequence[str]) -> GeneSpace:
    if isinstance(genes, str):
        if genes != "shared":
            msg = f"genes={genes!r}: give 'shared' or a list of gene names"
            raise OptionError(msg)
        return common_genes(sources)
    wanted = [str(g) for g in genes]
    if not wanted:
        msg = "genes: the gene list is empty"
        raise OptionError(msg)
    if len(set(wanted)) != len(wanted):
        dup = next(g for g in wanted if wanted.count(g) > 1)
        msg = f"genes: '{dup}' is listed twice"
        raise OptionError(msg)
    kind = "ensembl" if all(ENSEMBL.match(g) for g in wanted) else "symbol"
    if kind == "ensembl":
        wanted = [g.split(".", 1)[0] for g in wanted]
    known: set[Any] = set()
    for source in sources:
        keyed = as_kind(gene_keys(source.read_genes()), kind, np.array(wanted, dtype=object))
        if keyed is not None:
            known.update(keyed.keys)
    if missing := [g for g in wanted if g not in known]:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        msg = f"genes: no source of the selection has {shown}"
        raise OptionError(msg)
    return onto_genes(sources, np.array(wanted, dtype=object), kind)


class CellLoader:
    """Iterate the selected cells of a ``select`` output in minibatches.

    ``selection`` is the output folder or its ``manifest.parquet``. ``budget=K`` keeps the
    first K cells of the priority order. ``genes`` is ``"shared"`` (the genes every source of
    the selection has) or a list of names (Ensembl ids or symbols); a source lacking a listed
    gene gives zeros. ``root``: the sources were moved together, to this folder; each is looked
    for under it at its path relative to the folder they all shared (for one source, its
    folder). Sources are read as the selection read them (``counts_layer``, ``obs_filter`` from
    the report.json beside the manifest).

    ``sampling`` says which cells an epoch draws:

    - ``"uniform"``: every cell once (``replacement=True``: cells drawn uniformly, with
      repeats);
    - ``"weight"``: cells drawn in proportion to the manifest's ``weight`` (the pool cells a
      selected cell stands for), so an epoch has the pool's distribution back;
    - ``"balanced:COLUMN"``: an equal share of the epoch (to one cell) for each value of a
      manifest column such as ``cell_type`` or ``dataset_id``, cells uniform within a value;
      cells where the column is null are never drawn.

    ``replacement`` defaults to False for uniform and True otherwise; without replacement a
    cell is drawn at most once per epoch. ``epoch_size`` is the number of cells an epoch draws
    over all ranks, by default the selection's size (after ``budget``), whatever the sampling;
    for uniform without replacement a smaller size draws that many distinct cells. The draw
    depends only on ``seed`` and the epoch (``set_epoch``), and rank ``rank`` of
    ``world_size`` takes every ``world_size``-th cell of it (uniform without replacement and
    without ``epoch_size``: every ``world_size``-th cell of the priority order), so the ranks'
    parts are disjoint draws of one epoch. Drawn cells are read in blocks of neighbouring rows
    and shuffled within a buffer of ``buffer_size`` blocks; with ``shuffle=False`` (uniform,
    every cell once) they come in priority order. With ``read_ahead`` the next buffer is read
    in a thread while the current one is consumed.
    """

    def __init__(
        self,
        selection: str | os.PathLike[str],
        *,
        batch_size: int = 256,
        shuffle: bool = True,
        seed: int = 0,
        sampling: str = "uniform",
        replacement: bool | None = None,
        epoch_size: int | None = None,
        genes: str | Sequence[str] = "shared",
        labels: Sequence[str] = ("cell_type",),
        rank: int = 0,
        world_size: int = 1,
        budget: int | None = None,
        block_size: int = BLOCK_SIZE,
        buffer_size: int = BUFFER_BLOCKS,
        drop_last: bool = False,
        read_ahead: bool = True,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        for name, value in (
            ("batch_size", batch_size),
            ("world_size", world_size),
            ("block_size", block_size),
            ("buffer_size", buffer_size),
            ("epoch_size", 1 if epoch_size is None else epoch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{name}={value!r}: must be a positive integer"
                raise OptionError(msg)
        check_seed(seed)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            msg = f"rank={rank!r}: must be in 0..{world_size - 1} for world_size={world_size}"
            raise OptionError(msg)
        self.sampling = parse_sampling(sampling, replacement)
        if not shuffle and not (self.sampling.every_cell_once and epoch_size is None):
            msg = (
                f"shuffle=False: only with sampling='uniform', every cell once (not with "
                f"sampling={sampling!r}, replacement={replacement!r}, epoch_size={epoch_size!r})"
            )
            raise OptionError(msg)
        labels = (labels,) if isinstance(labels, str) else tuple(labels)
        self.manifest_path = _manifest_path(selection)
        frame = _selected(self.manifest_path, budget)
        size = frame.height if epoch_size is None else epoch_size
        if world_size > size:
            what = "the selection" if epoch_size is None else "epoch_size"
            msg = f"world_size={world_size} is larger than {what} ({size} cells)"
            raise OptionError(msg)
        if missing := [c for c in labels if c not in frame.columns]:
            msg = f"labels: {self.manifest_path} has no column {', '.join(map(repr, missing))}"
            raise OptionError(msg)
        draw = Draw.of(self.sampling, frame, size, self.manifest_path)
        self._sources = _open(frame, self.manifest_path, root)
        order = list(self._sources)
        space = _gene_space([self._sources[s] for s in order], genes)
        self.genes: NDArray[np.object_] = space.genes
        self.gene_kind = space.kind
        self._projection = dict(zip(order, space.projections, strict=True))
        self._readers: dict[str, Callable[[NDArray[np.int64]], sp.csr_matrix]] = {}
        for (name,), cells in frame.group_by(["source"]):
            source = self._sources[str(name)]
            rows = cells["row"].to_numpy().astype(np.int64)
            row_reader = getattr(source, "row_reader", None)
            self._readers[str(name)] = (
                row_reader(rows) if row_reader is not None else functools.partial(read_rows, source)
            )
        cells = frame.select(
            pl.col("source").replace_strict(order, list(range(len(order)))).alias("source"),
            pl.col("row").cast(pl.Int64),
            "cell_id",
            "dataset_id",
            pl.col("weight").cast(pl.Float32),
            pl.col("selection_rank").cast(pl.Int64),
            *(pl.col(c).alias(f"label {c}") for c in labels),  # "source" may be one of them
        )
        # numpy from here on: iterating never calls polars, whose thread pool can deadlock in
        # a process forked from this one (a torch DataLoader worker)
        self._cells = _Cells(
            source=cells["source"].to_numpy().astype(np.int64),
            row=cells["row"].to_numpy().astype(np.int64),
            cell_id=cells["cell_id"].to_numpy().astype(object),
            dataset_id=cells["dataset_id"].to_numpy().astype(object),
            weight=cells["weight"].to_numpy().astype(np.float32),
            selection_rank=cells["selection_rank"].to_numpy().astype(np.int64),
            labels={c: cells[f"label {c}"].to_numpy().astype(object) for c in labels},
        )
        self._draw = draw
        self._order = order
        self.labels = labels
        # the label values of the whole selection (every rank), sorted: the same on every rank
        self.classes: dict[str, list[str]] = {
            c: sorted(frame[c].drop_nulls().cast(pl.String).unique().to_list()) for c in labels
        }
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.block_size, self.buffer_size, self.drop_last = block_size, buffer_size, drop_last
        self.epoch_size, self.read_ahead = epoch_size, read_ahead
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._part, self._parts = 0, 1  # the batches of this rank this loader yields (split)

    @property
    def n_cells(self) -> int:
        """Cells this rank yields per epoch (over all its workers)."""
        return len(range(self.rank, self._draw.size, self.world_size))

    @property
    def cell_ids(self) -> NDArray[np.object_]:
        """The selection's cell ids in priority order: position ``i`` of :meth:`positions`
        and :meth:`read` is ``cell_ids[i]``."""
        return self._cells.cell_id

    @property
    def sources(self) -> dict[str, str]:
        """The source path of each ``dataset_id`` of the selection, where it was read."""
        return {source.dataset_id: str(source.path) for source in self._sources.values()}

    def __len__(self) -> int:
        """Batches this loader yields per epoch (a :meth:`split` piece: its share)."""
        return len(range(self._part, self._n_batches(), self._parts))

    def _n_batches(self) -> int:
        full, rest = divmod(self.n_cells, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def set_epoch(self, epoch: int) -> None:
        """Use the draw and shuffle order of ``epoch`` for the next iteration."""
        self.epoch = int(epoch)

    def split(self, part: int, parts: int) -> CellLoader:
        """A loader for one of ``parts`` DataLoader workers: batches ``part``, ``part + parts``,
        ... of this loader's epoch, the same batches whatever ``parts`` is (taken in turn, as a
        DataLoader takes them from its workers, they are this loader's batches in order). It
        shares this loader's open sources and gene order."""
        if not 0 <= part < parts:
            msg = f"part={part!r}: must be in 0..{parts - 1}"
            raise OptionError(msg)
        piece = copy.copy(self)
        piece._part, piece._parts = self._part + part * self._parts, self._parts * parts
        return piece

    def positions(self) -> NDArray[np.int64]:
        """This rank's cells of the epoch in the order they are yielded, as positions into the
        selection in priority order (see :attr:`cell_ids`; a position repeats where sampling
        drew its cell more than once); iterating yields them ``batch_size`` at a time. Reads
        nothing; :meth:`read` reads any of them."""
        parts = list(self._buffers())
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _buffers(self) -> Iterator[NDArray[np.int64]]:
        """This rank's cells of the epoch, one array of positions per buffer."""
        drawn = self._draw.cells(self.seed, self.epoch, self.rank, self.world_size)
        n = len(drawn)
        if not self.shuffle:
            step = self.block_size * self.buffer_size
            for start in range(0, n, step):
                yield drawn[start : start + step]
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        source, row = self._cells.source[drawn], self._cells.row[drawn]
        by_file = np.lexsort((row, source))  # cells in file order: neighbours read together
        blocks: list[NDArray[np.int64]] = []
        for s in np.unique(source):
            members = by_file[source[by_file] == s]
            offset = int(rng.integers(self.block_size))  # block edges move from epoch to epoch
            cuts = np.arange(offset or self.block_size, len(members), self.block_size)
            blocks.extend(np.split(members, cuts))
        picked = rng.permutation(len(blocks))
        for start in range(0, len(blocks), self.buffer_size):
            chosen = [blocks[i] for i in picked[start : start + self.buffer_size]]
            yield drawn[rng.permutation(np.concatenate(chosen))]

    def _reads(self) -> Iterator[list[NDArray[np.int64]]]:
        """This loader's batches of the epoch (positions), a buffer's worth of them a read."""
        order, size = self.positions(), self.batch_size
        mine = range(self._part, self._n_batches(), self._parts)
        per_read = max(1, round(self.block_size * self.buffer_size / size))
        for start in range(0, len(mine), per_read):
            yield [order[j * size : (j + 1) * size] for j in mine[start : start + per_read]]

    def _read_batches(self, batches: list[NDArray[np.int64]]) -> list[Batch]:
        """The given batches, read together (each source once)."""
        whole = self.read(np.concatenate(batches))
        ends = np.cumsum([len(b) for b in batches])
        return [_take(whole, slice(e - len(b), e)) for b, e in zip(batches, ends, strict=True)]

    def read(self, positions: NDArray[np.int64]) -> Batch:
        """The cells at ``positions`` (see :meth:`positions`), in that order; each source is
        read once, its rows in file order."""
        cells = self._cells.take(positions)
        source, rows = cells.source, cells.row
        pieces, where = [], []
        for s in np.unique(source):
            at = np.flatnonzero(source == s)
            wanted, back = np.unique(rows[at], return_inverse=True)
            name = self._order[int(s)]
            block = self._readers[name](wanted) @ self._projection[name]
            pieces.append(sp.csr_matrix(block)[back])
            where.append(at)
        x = sp.vstack(pieces, format="csr")
        x = x[np.argsort(np.concatenate(where), kind="stable")]
        x = sp.csr_matrix(x, dtype=np.float32)
        x.sort_indices()
        return Batch(
            X=x,
            cell_id=cells.cell_id,
            labels=cells.labels,
            weight=cells.weight,
            selection_rank=cells.selection_rank,
            dataset_id=cells.dataset_id,
            row=rows,
        )

    def __iter__(self) -> Iterator[Batch]:
        reads = self._reads()
        if not self.read_ahead:
            for batches in reads:
                yield from self._read_batches(batches)
            return
        # the next buffer is read in a thread while this one is consumed (h5py, zarr and scipy
        # release the GIL for much of a read); one thread, so reads stay in order
        with ThreadPoolExecutor(1, thread_name_prefix="scurate-read-ahead") as pool:
            ahead: Future[list[Batch]] | None = None
            try:
                for batches in reads:
                    following = pool.submit(self._read_batches, batches)
                    if ahead is not None:
                        yield from ahead.result()
                    ahead = following
                if ahead is not None:
                    yield from ahead.result()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)


def _take(batch: Batch, part: slice) -> Batch:
    return Batch(
        X=batch.X[part],
        cell_id=batch.cell_id[part],
        labels={k: v[part] for k, v in batch.labels.items()},
        weight=batch.weight[part],
        selection_rank=batch.selection_rank[part],
        dataset_id=batch.dataset_id[part],
        row=batch.row[part],
    )


def _concat(batches: Sequence[Batch]) -> Batch:
    first = batches[0]
    return Batch(
        X=sp.vstack([b.X for b in batches], format="csr"),
        cell_id=np.concatenate([b.cell_id for b in batches]),
        labels={k: np.concatenate([b.labels[k] for b in batches]) for k in first.labels},
        weight=np.concatenate([b.weight for b in batches]),
        selection_rank=np.concatenate([b.selection_rank for b in batches]),
        dataset_id=np.concatenate([b.dataset_id for b in batches]),
        row=np.concatenate([b.row for b in batches]),
    )

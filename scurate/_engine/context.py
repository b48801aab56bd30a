"""The policy contract: the context a policy sees, and the checks on what it returns."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from scurate import _core
from scurate._compute.faiss_index import build_index, exact_search_affordable, ivf_lists, search
from scurate._compute.graph import PoolGraph, nearest_others
from scurate._data import spill
from scurate._plugins.registry import Registered, calling
from scurate.errors import OptionError, PluginError

SHORT_LISTS = 0.05  # above this share of short lists, neighbor_graph searches instead


@dataclass(frozen=True)
class Rows:
    """Rows ``rows`` of ``values`` (an embedding or a manifest), taken on first read: a policy
    that never reads them (facility location reads the neighbour lists) costs no copy, which
    at a million cells is 200 MB of embedding and as much of manifest."""

    values: Any  # numpy array or polars frame
    rows: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.rows)

    def take(self) -> Any:
        if isinstance(self.values, np.ndarray):
            return spill.take(self.values, self.rows)
        return self.values[self.rows]


class SelectionContext:
    """What a policy receives.

    Attributes
    ----------
    embeddings
        float32 (n_cells, n_dims), C-contiguous, one row per pool cell.
    manifest
        The pool's manifest rows (polars), in the same order as ``embeddings``.
    rng
        A seeded generator: a policy draws all its randomness from it.
    params
        ``--param key=value`` strings given for this run.
    info
        Diagnostics a policy may leave for the report (``"covering_radius"``: the radius after
        each pick, as a sequence of floats; other JSON-able values go to ``policy_info``).
    covered
        With ``--reference``: float32, each pool cell's distance to its nearest reference cell
        (the corpus the team already has), so a policy can treat that corpus as already
        covered. None without a reference.
    obs
        Reads a column of the sources' obs by name for the context's cells: one string per
        pool row, in order (null where the cell's source lacks it), or None when no source has
        that column (see :func:`obs_reader`). None: only manifest columns can be read.
    graph
        The pool's own neighbour lists from scoring, restricted to these cells (see
        :mod:`scurate._compute.graph`), which :meth:`neighbor_graph` reads; None: it searches.

    :meth:`neighbors` finds nearest cells with FAISS; :meth:`neighbor_graph` gives every cell's
    nearest others; :meth:`embedding_rows` reads some cells' rows of the embedding;
    :meth:`param` reads a parameter;
    :meth:`column` reads a per-cell column from the manifest or the sources' obs.

    scurate builds the context with the embeddings and manifest as :class:`Rows` of the pool's,
    taken when a policy first reads them.
    """

    def __init__(
        self,
        embeddings: NDArray[np.float32] | Rows,
        manifest: pl.DataFrame | Rows,
        rng: np.random.Generator,
        params: dict[str, str] | None = None,
        info: dict[str, Any] | None = None,
        covered: NDArray[np.float32] | None = None,
        obs: Callable[[str], pl.Series | None] | None = None,
        graph: PoolGraph | None = None,
    ) -> None:
        self._embeddings = embeddings
        self._manifest = manifest
        self.rng = rng
        # held as Params, so that the keys a policy read are known
        self.params: dict[str, str] = params if isinstance(params, Params) else Params(params or {})
        self.info: dict[str, Any] = {} if info is None else info
        self.covered = covered
        self.obs = obs
        self.graph = graph
        self._indexes: dict[bool, Any] = {}

    @property
    def embeddings(self) -> NDArray[np.float32]:
        held = self._embeddings
        if isinstance(held, Rows):
            held = self._embeddings = held.take()
        return held

    @embeddings.setter
    def embeddings(self, values: NDArray[np.float32]) -> None:
        self._embeddings = values
        self._indexes.clear()  # built over the old rows

    def embedding_rows(self, rows: NDArray[np.integer[Any]]) -> NDArray[np.float32]:
        """``embeddings[rows]`` without taking the whole embedding first: a policy that looks
        at a sample of a large pool reads only the sample's rows (by blocks, in row order, from
        a map on disk)."""
        held = self._embeddings
        if isinstance(held, Rows):
            return spill.take(held.values, held.rows[np.asarray(rows, dtype=np.int64)])
        return spill.take(held, np.asarray(rows, dtype=np.int64))

    @property
    def manifest(self) -> pl.DataFrame:
        held = self._manifest
        if isinstance(held, Rows):
            held = self._manifest = held.take()
        return held

    @manifest.setter
    def manifest(self, frame: pl.DataFrame) -> None:
        self._manifest = frame

    def __repr__(self) -> str:
        return f"SelectionContext({self.n_cells} cells, params={dict(self.params)!r})"

    def neighbors(
        self, queries: NDArray[Any] | Sequence[int], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The ``k`` pool cells nearest to each query: ``(distances, rows)``, nearest first.

        ``queries`` are rows of the pool (1-D integers: a cell is then its own first
        neighbour, at distance 0) or points (2-D float, ``n_dims`` wide). Distances are
        Euclidean. The search is exact (FAISS flat index) where that is affordable and uses
        FAISS IVF above (see :mod:`scurate._compute.faiss_index`); the index is built once per
        context.
        """

        q = np.asarray(queries)
        if q.ndim == 1 and (q.dtype.kind in "iu" or q.size == 0):
            if q.size and (q.min() < 0 or q.max() >= self.n_cells):
                msg = f"queries: rows must be in 0..{self.n_cells - 1}"
                raise ValueError(msg)
            points = self.embeddings[q.astype(np.int64)]
        elif q.ndim == 2 and q.shape[1] == self.embeddings.shape[1]:
            points = np.ascontiguousarray(q, dtype=np.float32)
        else:
            msg = (
                f"queries: expected 1-D integer rows or a 2-D array {self.embeddings.shape[1]} "
                f"wide, got {q.dtype} of shape {q.shape}"
            )
            raise ValueError(msg)
        if not 1 <= k <= self.n_cells:
            msg = f"k: must be between 1 and the {self.n_cells} cells, got {k}"
            raise ValueError(msg)
        exact = exact_search_affordable(len(points), self.n_cells, self.embeddings.shape[1])
        if exact not in self._indexes:
            factory = "Flat" if exact else f"IVF{ivf_lists(self.n_cells)},Flat"
            self._indexes[exact], _ = build_index(self.embeddings, factory=factory)
        return search(self._indexes[exact], points, k)

    def neighbor_graph(
        self, k: int, *, dtype: type[np.signedinteger[Any]] = np.int64
    ) -> tuple[NDArray[np.float32], NDArray[np.signedinteger[Any]]]:
        """Every cell's ``k`` nearest other cells: ``(distances, rows)``, each (n_cells, k),
        nearest first; rows of ``dtype`` (int64, or int32 for half the memory).

        Read from the pool's neighbour lists (:attr:`graph`, one search shared with scoring)
        where they are ``k`` wide or more: a cell whose listed neighbours are not among this
        context's cells (set aside as duplicates or by QC, or in another stratum) then has
        fewer, and -1 rows at distance inf fill the rest. Without the lists, or where more
        than ``SHORT_LISTS`` of the cells would have fewer (many copies or QC failures among
        the neighbours), one search of every cell (:meth:`neighbors`) finds ``k`` for each;
        ``info["neighbor_graph"]`` says which where the lists were there. Distances are
        computed again in float64 either way, so they do not change with the thread count.
        Large lists come back as read-only maps of temporary files
        (:mod:`scurate._data.spill`): read them a block at a time (``spill.blocks``).
        """
        if not 0 <= k < self.n_cells:
            msg = f"k: must be between 0 and {self.n_cells - 1} (the other cells), got {k}"
            raise ValueError(msg)
        if self.graph is not None and k <= self.graph.width:
            if self.graph.n_cells != self.n_cells:
                msg = f"graph: covers {self.graph.n_cells} cells, the context {self.n_cells}"
                raise ValueError(msg)
            dist, near = self.graph.lists(k, dtype)
            short_lists = sum(int((b[:, -1] < 0).sum()) for _, b in spill.blocks(near)) if k else 0
            short = short_lists / self.n_cells if self.n_cells else 0.0
            if short <= SHORT_LISTS:
                self.info["neighbor_graph"] = "the pool's lists"
                return dist, near
            self.info["neighbor_graph"] = (
                f"a search ({100 * short:.0f} % of the pool's lists short)"
            )
        rows = np.arange(self.n_cells, dtype=np.int64)
        if k == 0:
            return np.zeros((self.n_cells, 0), np.float32), np.zeros((self.n_cells, 0), dtype)
        _, found = self.neighbors(rows, k + 1)
        found = np.ascontiguousarray(found, dtype=np.int64)
        d2 = _core.row_sq_dists(self.embeddings, found, 0)  # exact, as the pool's lists are
        listed, dist = nearest_others(d2, found, 0, k)
        return dist, listed.astype(dtype)

    @property
    def n_cells(self) -> int:
        return len(self._embeddings)

    def column(self, name: str) -> pl.Series | None:
        """One value per pool cell: the manifest column ``name`` where it has a value for some
        cell, else the sources' obs column ``name`` (strings), else None."""
        listed = self._manifest_column(name)
        if listed is not None and (listed.null_count() < len(listed) or self.obs is None):
            return listed
        found = None if self.obs is None else self.obs(name)
        if found is None:
            return listed
        if len(found) != self.n_cells:
            msg = f"obs column {name!r}: {len(found)} values for {self.n_cells} cells"
            raise ValueError(msg)
        return found

    def _manifest_column(self, name: str) -> pl.Series | None:
        """The manifest's column ``name`` for these cells (only that column taken where the
        manifest is not yet), or None."""
        if isinstance(self._manifest, Rows):
            frame = self._manifest.values
            return frame[name].gather(self._manifest.rows) if name in frame.columns else None
        return self._manifest[name] if name in self._manifest.columns else None

    def param(self, key: str, default: str) -> str:
        """A ``--param`` value, or ``default`` when it was not given."""
        return self.params.get(key, default)


class Params(dict[str, str]):
    """A policy's ``--param`` values, remembering which keys the policy looked at, so that a
    parameter no policy reads (a typo, another policy's) is reported instead of ignored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.looked_at: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.looked_at.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.looked_at.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.looked_at.add(key)
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self.looked_at.update(super().keys())
        return super().__iter__()

    def items(self) -> Any:
        self.looked_at.update(super().keys())
        return super().items()

    def unread(self) -> list[str]:
        """The keys given that the policy never looked at, sorted."""
        return sorted(set(super().keys()) - self.looked_at)


def looked_at(params: dict[str, str]) -> set[str]:
    """The keys of ``params`` a policy looked at (all of them where they were not tracked)."""
    return set(params.looked_at) if isinstance(params, Params) else set(dict.keys(params))


def check_params_read(policy: Registered, params: dict[str, str]) -> None:
    """One line naming a ``--param`` the policy never read (a typo, or another policy's)."""
    if not isinstance(params, Params):
        return
    unread = params.unread()
    if unread:
        key = unread[0]
        read = ", ".join(sorted(params.looked_at)) or "none"
        msg = (
            f"params['{key}']={dict.__getitem__(params, key)!r}: policy '{policy.name}' has no "
            f"parameter '{key}' (it reads: {read})"
        )
        raise OptionError(msg)


def run_policy(policy: Registered, ctx: SelectionContext, budget: int) -> NDArray[np.int64]:
    """Run a policy and check that it returned ``budget`` distinct rows in range."""
    who = f"policy '{policy.name}' (plugin '{policy.plugin}')"
    with calling(who):
        result = policy.obj(ctx, budget)
    order = np.asarray(result)
    if order.ndim != 1 or (order.size and order.dtype.kind not in "iu"):
        msg = f"{who} returned {order.dtype} of shape {order.shape}; expected 1-D integer rows"
        raise PluginError(msg)
    order = order.astype(np.int64)
    if len(order) != budget:
        msg = f"{who} returned {len(order)} rows for a budget of {budget}"
        raise PluginError(msg)
    if len(order) and (order.min() < 0 or order.max() >= ctx.n_cells):
        msg = f"{who} returned rows outside 0..{ctx.n_cells - 1}"
        raise PluginError(msg)
    if len(np.unique(order)) != len(order):
        msg = f"{who} returned the same row more than once"
        raise PluginError(msg)
    return order


def obs_reader(sources: Sequence[Any], manifest: pl.DataFrame) -> Callable[[str], pl.Series | None]:
    """The :attr:`SelectionContext.obs` reader for the cells of ``manifest`` (its
    ``dataset_id`` and ``row`` columns name each cell's source and obs row): a column's values
    as strings, null where missing or where the source lacks it; None when no source has it.
    Each source's obs is read once, at the first call."""
    where = {source.dataset_id: source for source in sources}
    frames: dict[str, Any] = {}
    cells_of: dict[str, tuple[NDArray[Any], NDArray[np.int64]]] = {}  # at the first read

    def read(name: str) -> pl.Series | None:
        if not cells_of:
            cells_of["all"] = (
                manifest["dataset_id"].to_numpy(),
                manifest["row"].to_numpy().astype(np.int64),
            )
        datasets, rows = cells_of["all"]
        values = np.full(len(rows), None, dtype=object)
        found = False
        for dataset_id in np.unique(datasets):
            if dataset_id not in frames:
                frames[dataset_id] = where[dataset_id].read_obs()
            obs = frames[dataset_id]
            if name not in obs.columns:
                continue
            found = True
            cells = np.flatnonzero(datasets == dataset_id)
            column = obs[name].iloc[rows[cells]]
            text = column.astype(object).to_numpy()
            missing = column.isna().to_numpy()
            values[cells] = [None if m else str(v) for v, m in zip(text, missing, strict=True)]
        return pl.Series(name, values.tolist(), dtype=pl.String) if found else None

    return read

"""The options of every job, parsed and checked once, where they come in (the CLI or the Python
API), then carried down whole.

Each job has one frozen dataclass: :class:`ScoreOptions` (``score``), :class:`SelectOptions`
(``select``), :class:`BenchOptions` (``bench``) and :class:`IndexOptions` (``index build``).
Their fields are the keyword arguments of the API functions and, by the same names, the CLI's
flags (``near_dup_eps`` is ``--near-dup-eps``). A field accepts what a user would type
(``strata="tissue,cell_type"``, ``params=["k=15"]``) and holds it parsed. Errors name the
Python parameter (``budget=0: must be at least 1``); the CLI says its own flag instead.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from scurate._backend import check_backend
from scurate._compute.dedup import MIN_GENES
from scurate._compute.qc import QcSpec, parse_qc
from scurate._data.sources import ReadOptions
from scurate._engine.threads import check_threads
from scurate.errors import OptionError

OptionsT = TypeVar("OptionsT", bound="Options")


def check_budget(
    budget: int,
    pool: int | None = None,
    *,
    set_aside: int = 0,
    not_primary: int = 0,
    failed_qc: int = 0,
    name: str = "budget",
) -> None:
    """The one rule for a budget: at least 1 and, once the pool is known, at most the cells a
    policy can choose from (``pool``, after ``set_aside`` duplicates, ``failed_qc`` cells and,
    with ``primary_only``, ``not_primary`` cells were set aside). ``name`` is the parameter
    that gave it."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        msg = f"{name}={budget!r}: must be at least 1"
        raise OptionError(msg)
    if pool is not None and budget > pool:
        aside = []
        if set_aside:
            aside.append(f"{set_aside} duplicates (keep_duplicates=True keeps them)")
        if not_primary:
            aside.append(f"{not_primary} cells not primary data (primary_only=True)")
        if failed_qc:
            aside.append(f"{failed_qc} cells failing QC (qc='off' keeps them)")
        msg = f"{name}={budget} is more than the {pool} cells "
        msg += "left after setting aside " + " and ".join(aside) if aside else "in the pool"
        raise OptionError(msg)


def check_seed(seed: int, name: str = "seed") -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        msg = f"{name}={seed!r}: must be a whole number >= 0"
        raise OptionError(msg)


def check_text(value: str | None, name: str) -> None:
    """An optional text option: None, or a string that is not blank."""
    if value is not None and (not isinstance(value, str) or not value.strip()):
        msg = f"{name}={value!r}: must be a non-empty string"
        raise OptionError(msg)


def parse_params(pairs: Sequence[str] | Mapping[str, str], name: str = "params") -> dict[str, str]:
    """``["k=v", ...]`` (or a mapping) to a dict, or one line naming the malformed pair."""
    if isinstance(pairs, Mapping):
        return {str(k): str(v) for k, v in pairs.items()}
    params: dict[str, str] = {}
    for pair in [pairs] if isinstance(pairs, str) else pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            msg = f"{name}={pair!r}: expected key=value"
            raise OptionError(msg)
        params[key.strip()] = value.strip()
    return params


QUOTAS = "proportional, equal or min:N"


# chosen on held-out data by benchmarks/bench_default_policy.py (benchmarks/README.md)
DEFAULT_POLICY = "facility-density"


@dataclass(frozen=True)
class Quota:
    """How the budget is divided: ``proportional`` to stratum size, ``equal`` (water-filling),
    or ``min`` (every stratum at least ``minimum`` cells, the rest proportional)."""

    kind: str
    minimum: int = 0

    def __str__(self) -> str:
        return f"min:{self.minimum}" if self.kind == "min" else self.kind


def parse_quota(text: str) -> Quota:
    """``proportional``, ``equal`` or ``min:N``, or one line naming ``quota``."""
    value = text.strip()
    if value in ("proportional", "equal"):
        return Quota(value)
    kind, sep, number = value.partition(":")
    if kind == "min" and sep:
        try:
            minimum = int(number)
        except ValueError:
            minimum = -1
        if minimum >= 1:
            return Quota("min", minimum)
    msg = f"quota={text!r}: expected {QUOTAS} (N a positive integer)"
    raise OptionError(msg)


def parse_columns(strata: str | Sequence[str]) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` to a list of column names, checked for emptiness."""
    parts = strata.split(",") if isinstance(strata, str) else list(strata)
    columns = [c.strip() for c in parts if c.strip()]
    if not columns:
        msg = f"strata={strata!r}: name at least one manifest column"
        raise OptionError(msg)
    if len(set(columns)) != len(columns):
        msg = f"strata='{','.join(columns)}': a column is named twice"
        raise OptionError(msg)
    return columns


def _paths(
    values: Sequence[str | os.PathLike[str]] | str | os.PathLike[str] | None,
) -> tuple[Path, ...]:
    if values is None:
        return ()
    if isinstance(values, (str, os.PathLike)):
        return (Path(values),)
    return tuple(Path(v) for v in values)


@dataclass(frozen=True, kw_only=True)
class Options:
    """Shared machinery: build from keyword arguments or a CLI's parameters, and report."""

    @classmethod
    def of(cls: type[OptionsT], job: str, **given: Any) -> OptionsT:
        """Build from keyword arguments; an unknown one is one line naming it and the job."""
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(given) - known)
        if unknown:
            msg = f"{job}() has no option {unknown[0]!r} (options: {', '.join(sorted(known))})"
            raise OptionError(msg)
        return cls(**given)

    @classmethod
    def from_params(cls: type[OptionsT], params: Mapping[str, Any]) -> OptionsT:
        """Build from a CLI command's parameters, taking the ones that are fields; a parameter
        left unset (None) takes the field's default."""
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        return cls(**{k: v for k, v in params.items() if k in known and v is not None})

    def to_report(self) -> dict[str, Any]:
        """The options as report.json's ``parameters`` record them (JSON values only)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # frozen: only __post_init__ normalizes


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Quota):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and hasattr(value, "as_given"):
        return value.as_given()
    return value


@dataclass(frozen=True, kw_only=True)
class PoolOptions(Options):
    """How the sources become a scored pool: embedding, duplicates, metadata.

    Attributes
    ----------
    obsm_key
        Use this stored embedding (``X_pca``, ``X_scVI``...) instead of computing one.
    embedder
        The embedder used when ``obsm_key`` is not given (``scurate plugins`` lists them).
    seed
        Seeds every random choice: the same seed and inputs give the same manifest.
    near_dup_eps
        Distance under which cells are near duplicates (default: from the data, see
        :mod:`scurate._compute.scoring`).
    index_factory
        FAISS index-factory string for the neighbour search (default: exact ``Flat`` while
        affordable, else IVF; see :mod:`scurate._compute.faiss_index`).
    dup_min_genes
        Fewest nonzero genes for a cell to be called an exact duplicate.
    metadata_map
        A TOML mapping file for the harmonizers (see ``scurate.harmonize``).
    set_fields
        ``"field=value"`` metadata constants for every dataset (``"tissue=pancreas"``).
    threads
        OpenMP and BLAS threads (default: the cores this process may use; see
        :mod:`scurate._engine.threads`).
    work_dir
        A folder where the scored pool (embedding, duplicates, scores) is stored and found
        again by a later run with the same sources and these options (see
        :mod:`scurate._engine.cache`); None stores nothing.
    counts_layer
        Where every source keeps its raw counts: ``"X"``, ``"raw"`` (``.raw.X``) or a layer's
        name (default: the first of X, ``.raw.X`` and ``layers["counts"]`` that holds whole
        numbers; report.json says which each source used).
    obs_filter
        A value filter on obs applied where the cells are read, as TileDB-SOMA writes it
        (``"tissue_general == 'lung'"``); TileDB-SOMA sources only (an error when no source
        is one; other sources beside them are read whole, with a log line). It picks the
        cells of the sources, never those of ``reference``.
    qc
        QC filters, as ``"min_genes=200,max_mito=0.2,doublets=auto"`` or a mapping (keys
        ``min_genes``, ``min_counts``, ``max_mito``, ``doublets``: ``auto``, ``off`` or a score
        threshold); a key left out takes its per-assay default, and ``"off"`` filters nothing
        (see :mod:`scurate._compute.qc`). A cell that fails is never selected.
    """

    obsm_key: str | None = None
    embedder: str = "pca"
    seed: int = 0
    near_dup_eps: float | None = None
    index_factory: str | None = None
    dup_min_genes: int = MIN_GENES
    metadata_map: Path | None = None
    set_fields: tuple[str, ...] = ()
    threads: int | None = None
    work_dir: Path | None = None
    counts_layer: str | None = None
    obs_filter: str | None = None
    qc: QcSpec = field(default_factory=QcSpec)

    def __post_init__(self) -> None:
        self._set("qc", parse_qc(self.qc))
        check_seed(self.seed)
        check_threads(self.threads)
        check_text(self.counts_layer, "counts_layer")
        check_text(self.obs_filter, "obs_filter")
        if self.work_dir is not None:
            self._set("work_dir", Path(self.work_dir))
            if self.work_dir.exists() and not self.work_dir.is_dir():
                msg = f"work_dir='{self.work_dir}': exists and is not a folder"
                raise OptionError(msg)
        eps = self.near_dup_eps
        if eps is not None and not (math.isfinite(eps) and eps >= 0):
            msg = f"near_dup_eps={eps}: must be a distance >= 0"
            raise OptionError(msg)
        if self.dup_min_genes < 1:
            msg = f"dup_min_genes={self.dup_min_genes}: must be at least 1"
            raise OptionError(msg)
        if self.metadata_map is not None:
            self._set("metadata_map", Path(self.metadata_map))
        self._set("set_fields", tuple(self.set_fields))

    @property
    def read(self) -> ReadOptions:
        """What the source readers take of these options."""
        return ReadOptions(counts_layer=self.counts_layer, obs_filter=self.obs_filter)


@dataclass(frozen=True, kw_only=True)
class ScoreOptions(PoolOptions):
    """``score``: the pool options, and a reference corpus to score novelty against.

    Attributes
    ----------
    reference
        A corpus the team already has: one folder written by ``scurate index build``, or h5ad
        files and folders. Cells are embedded with the reference's model, ``novelty`` is each
        cell's distance to its nearest reference cell, and ``kcenter`` starts with the
        reference already covered.
    backend
        Where the per-source work runs (reading obs and obsm, the counts hashes and QC values,
        the PCA projection): ``"local"``, in this process, or ``"ray"``, as Ray tasks (see
        :mod:`scurate._backend`; needs ``pip install 'scurate[ray]'``). The neighbour search,
        the scores and the policy run in this process either way, and the manifest is the same.
    ray_address
        With ``backend="ray"``: the Ray cluster to connect to (``"ray://head:10001"``,
        ``"auto"``); default: a local Ray with ``threads`` CPUs (or the one this process
        already started).
    """

    reference: tuple[Path, ...] = ()
    backend: str = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("reference", _paths(self.reference))
        check_text(self.ray_address, "ray_address")
        check_backend(self.backend, self.ray_address)


def check_strata(
    strata: str | Sequence[str] | None, quota: Quota | str
) -> tuple[tuple[str, ...] | None, Quota]:
    """``strata`` as a tuple of column names (None: no strata) and ``quota`` parsed; one line
    where a quota other than ``proportional`` comes without strata."""
    columns = None if strata is None else tuple(parse_columns(strata))
    parsed = quota if isinstance(quota, Quota) else parse_quota(str(quota))
    if columns is None and parsed.kind != "proportional":
        msg = f"quota='{parsed}': needs `strata` (the columns whose values get quotas)"
        raise OptionError(msg)
    return columns, parsed


@dataclass(frozen=True, kw_only=True)
class SelectOptions(ScoreOptions):
    """``select``: what to score the pool with, and how to choose ``budget`` cells from it.

    Attributes
    ----------
    budget
        Cells to select; at most the number of cells in the sources.
    policy
        A registered selection policy (``scurate plugins`` lists them).
    params
        Policy parameters, as a mapping or as ``"key=value"`` strings.
    keep_duplicates
        Let the policy choose exact copies and every member of a near-duplicate group (by
        default it sees the kept copy and one cell per group).
    strata
        Manifest columns (``"tissue,cell_type"`` or a list) whose value combinations divide the
        budget; the policy runs inside each stratum (see :mod:`scurate._engine.strata`).
    quota
        With ``strata``: ``proportional`` to stratum size, ``equal`` (water-filling) or
        ``min:N`` (at least ``N`` cells per stratum, the rest proportional).
    primary_only
        Choose only cells whose ``is_primary_data`` is not false (CELLxGENE marks cells
        deposited again in another dataset with false); others are set aside.
    """

    budget: int
    policy: str = DEFAULT_POLICY
    params: Mapping[str, str] = field(default_factory=dict)
    keep_duplicates: bool = False
    strata: tuple[str, ...] | None = None
    quota: Quota = field(default_factory=lambda: Quota("proportional"))
    primary_only: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_budget(self.budget)  # the pool is checked once the sources are open
        self._set("params", parse_params(self.params))
        strata, quota = check_strata(self.strata, self.quota)
        self._set("strata", strata)
        self._set("quota", quota)

    def to_report(self) -> dict[str, Any]:
        out = super().to_report()
        out["quota"] = None if self.strata is None else str(self.quota)
        return out


@dataclass(frozen=True, kw_only=True)
class IndexOptions(Options):
    """``index build``: how a corpus is embedded and indexed (the fields of
    :class:`PoolOptions` of the same names)."""

    obsm_key: str | None = None
    seed: int = 0
    index_factory: str | None = None
    threads: int | None = None
    counts_layer: str | None = None

    def __post_init__(self) -> None:
        check_seed(self.seed)
        check_threads(self.threads)
        check_text(self.counts_layer, "counts_layer")

    @property
    def read(self) -> ReadOptions:
        """What the source readers take of these options."""
        return ReadOptions(counts_layer=self.counts_layer)

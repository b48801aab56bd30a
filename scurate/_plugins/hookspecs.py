"""Every hook a plugin can implement; this file is the plugin API reference.

A plugin is a module registered under the ``scurate`` entry-point group, for example in its
``pyproject.toml``::

    [project.entry-points.scurate]
    by-donor = "scurate_by_donor"

Each hook receives a ``register`` callable (:class:`scurate.plugin.Register`) and calls it
once per thing it provides. Import the marker as ``from scurate import hookimpl``. A plugin
imports ``scurate`` and :mod:`scurate.plugin` (the contexts, column names, ontologies, native
kernels and readers it may build on) and nothing else of scurate.
"""

from __future__ import annotations

from typing import Any, Protocol

import pluggy

hookspec = pluggy.HookspecMarker("scurate")
hookimpl = pluggy.HookimplMarker("scurate")


class Register(Protocol):
    """The ``register`` callable a hook receives."""

    def __call__(self, name: str, obj: Any, *, summary: str = "") -> None: ...


@hookspec
def scurate_register_policies(register: Register) -> None:
    """Register selection policies: call ``register(name, policy, summary=...)``.

    ``policy(ctx: SelectionContext, budget: int) -> NDArray[np.int64]`` returns ``budget``
    distinct row indices of ``ctx.embeddings`` IN PRIORITY ORDER, so that every prefix of the
    result is itself a selection of that size. ``scurate select --policy NAME`` runs it.

    ``ctx`` (:class:`scurate.plugin.SelectionContext`) gives the policy:

    - ``ctx.embeddings``: float32 ``(n_cells, n_dims)``, C-contiguous, one row per pool cell;
    - ``ctx.manifest``: the pool's manifest rows (polars), in the same order;
    - ``ctx.neighbors(rows_or_points, k)``: ``(distances, rows)`` of the ``k`` nearest pool
      cells, by FAISS (exact flat index where affordable, IVF above);
    - ``ctx.neighbor_graph(k)``: every cell's ``k`` nearest other cells, read from the pool's
      own neighbour search where it reaches ``k`` (-1 where a neighbour was set aside), else
      searched;
    - ``ctx.rng``: a seeded ``numpy.random.Generator``; draw all randomness from it, so the
      same seed gives the same selection;
    - ``ctx.params`` / ``ctx.param(key, default)``: the ``--param key=value`` strings;
    - ``ctx.info``: a dict for the report (``"covering_radius"``: the radius after each pick,
      a list of ``budget`` floats; any other JSON-able entry lands in ``policy_info``).

    What the policy returns is checked: a 1-D integer array of exactly ``budget`` distinct
    rows in ``0..n_cells - 1``; anything else, or an exception, stops the run with one line
    naming the policy and its plugin. A policy raises :class:`scurate.plugin.OptionError` for a
    bad ``--param``. With ``--strata`` the policy runs once per stratum, on a context holding
    that stratum's rows (renumbered from 0) and that stratum's share of the budget. The native
    kernels behind scurate's own policies are in :mod:`scurate.plugin`: ``farthest_first``,
    ``covering_radius``, ``greedy_facility_location``, ``grid_covering``.
    """


@hookspec
def scurate_register_harmonizers(register: Register) -> None:
    """Register metadata harmonizers: call ``register(name, harmonizer, summary=...)``.

    ``harmonizer(obs: polars.DataFrame, dataset_id: str) -> polars.DataFrame`` receives one
    dataset's obs and returns it with the canonical manifest columns it could map filled,
    leaving the others null for the next harmonizer.

    ``obs`` holds the canonical columns as the harmonizers before left them (``cell_type``,
    ``cell_type_ontology_term_id``, ...; :data:`scurate.plugin.OUTPUT_COLUMNS`), then the
    source's own obs columns; one whose name is canonical is renamed ``obs.<name>``
    (:func:`scurate.plugin.obs_column`), and the obs names are in ``obs.index``
    (:data:`scurate.plugin.INDEX_COLUMN`). scurate keeps only what was null before: a term id
    fills its field whole. Order: ``cellxgene``, ``columns``, other plugins' harmonizers by
    name, ``ontology`` (which maps the free text they leave). A harmonizer that declares a
    keyword ``context`` receives a :class:`scurate.plugin.HarmonizeContext`: the source path,
    the ``--metadata-map`` entries that apply, uns scalars, and ``context.used(...)`` to record
    where a field came from for ``scurate harmonize``. :mod:`scurate.plugin` also holds the
    helpers scurate's own harmonizers use (``clean_text``, ``terms_from_ids``, ``id_column``)
    and the ontologies (``scurate.plugin.ontology``).
    """


@hookspec
def scurate_register_embedders(register: Register) -> None:
    """Register embedders: call ``register(name, embedder, summary=...)``.

    ``embedder(sources: Sequence[Source], *, rng: numpy.random.Generator, progress) ->
    Embedding`` (``progress(stage, done, total)`` reports how far it got)
    returns one float32 row per cell of every source, in source order, on one shared space
    (:class:`scurate.plugin.Source`, :class:`scurate.plugin.Embedding`).
    ``scurate select --embedder NAME`` uses it; without ``--obsm-key`` the default is ``pca``
    (:func:`scurate.plugin.pca_embedding`).
    """


@hookspec
def scurate_register_sources(register: Register) -> None:
    """Register source readers: call ``register(name, opener, summary=...)``.

    ``opener(path: Path, dataset_id: str, read: ReadOptions) -> Source`` opens one source so
    that its obs, genes and counts can be read in chunks (:class:`scurate.plugin.Source`; its
    ``read_genes`` returns a :class:`scurate.plugin.GeneTable`; ``read`` is passed only where
    the opener takes it, see :class:`scurate.plugin.ReadOptions`). ``name`` is a suffix such
    as ``".h5ad"``: files whose names end with it are opened by this reader. A reader of
    folders (an anndata zarr store, a TileDB-SOMA experiment) gives its opener a
    ``claims(path) -> bool`` attribute that recognises one cheaply, by its name or content,
    and may give a ``why_not(path) -> str | None`` that says why a folder given as a source is
    not one of its own (a TileDB-SOMA collection). Folders given as sources are opened when
    claimed, else searched recursively for files and claimed folders. A source may carry
    ``soma_joinids`` (the manifest's ``soma_joinid``; the loader then reopens it with
    ``soma_joinids=``) and ``obs_filter`` (the ``ReadOptions.obs_filter`` it applied).
    :class:`scurate.plugin.H5adSource` and :class:`scurate.plugin.ZarrSource` are the AnnData
    readers, to subclass; they read the counts from X, ``.raw.X`` or a layer as
    ``read.counts_layer`` says and name the matrix in ``counts_from``.
    """

"""Every hook a plugin can implement; this file is the plugin API reference.

A plugin is a module registered under the ``scurate`` entry-point group, for example in its
``pyproject.toml``::

    [project.entry-points.scurate]
    by-donor = "scurate_by_donor"

Each hook receives a ``register`` callable and calls it once per thing it provides. Import
the marker as ``from scurate import hookimpl``.
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
    result is itself a selection of that size. It must be deterministic given ``ctx.rng``. It
    may put diagnostics in ``ctx.info`` (``"covering_radius"``: the radius after each pick).
    ``scurate select --policy NAME --param key=value`` runs it; ``ctx.params`` holds the
    key/value strings.
    """


@hookspec
def scurate_register_harmonizers(register: Register) -> None:
    """Register metadata harmonizers: call ``register(name, harmonizer, summary=...)``.

    ``harmonizer(obs: polars.DataFrame, dataset_id: str) -> polars.DataFrame`` receives one
    dataset's obs and returns it with the canonical manifest columns it could map filled,
    leaving the others null for the next harmonizer.

    ``obs`` holds the canonical columns as the harmonizers before left them (``cell_type``,
    ``cell_type_ontology_term_id``, ...; ``scurate.harmonization.OUTPUT_COLUMNS``), then the
    source's own obs columns; one whose name is canonical is renamed ``obs.<name>``, and the
    obs names are in ``obs.index``. scurate keeps only what was null before: a term id fills
    its field whole. Order: ``cellxgene``, ``columns``, other plugins' harmonizers by name,
    ``ontology`` (which maps the free text they leave). A harmonizer that declares a keyword
    ``context`` receives a ``scurate.harmonization.HarmonizeContext``: the source path, the
    ``--metadata-map`` entries that apply, uns scalars, and ``context.used(...)`` to record
    where a field came from for ``scurate harmonize``.
    """


@hookspec
def scurate_register_embedders(register: Register) -> None:
    """Register embedders: call ``register(name, embedder, summary=...)``.

    ``embedder(sources: Sequence[Source], *, rng: numpy.random.Generator, progress) ->
    Embedding`` (``progress(stage, done, total)`` reports how far it got)
    returns one float32 row per cell of every source, in source order, on one shared space.
    ``scurate select --embedder NAME`` uses it; without ``--obsm-key`` the default is ``pca``.
    """


@hookspec
def scurate_register_sources(register: Register) -> None:
    """Register source readers: call ``register(suffix, opener, summary=...)``.

    ``opener(path: Path, dataset_id: str) -> Source`` opens a file whose name ends with
    ``suffix`` (for example ``".h5ad"``) so that its obs, genes and counts can be read in
    chunks. Folders given as sources are searched for every registered suffix.
    """

"""The plugin API: everything a scurate plugin may import besides the ``scurate`` package.

A plugin imports ``scurate`` (``hookimpl``, ``SelectionContext``, the errors, ...) and this
module, nothing else of scurate: the modules behind these names are private and may move.
scurate's own plugins in ``plugins/`` hold to the same rule (a test checks it). The hooks are
documented in their specs (``scurate_register_policies`` and the others: see the README's
"Write a policy" section).

Hooks
    hookimpl
        The marker of a hook implementation (also ``scurate.hookimpl``).
    Register
        The type of the ``register(name, obj, *, summary="")`` callable every hook receives.

Policies (``scurate_register_policies``)
    SelectionContext
        What a policy receives: embeddings, manifest, neighbours, seeded rng, params, info.
    farthest_first
        Native greedy k-center: rows in priority order and the covering radius after each.
    covering_radius
        The largest distance of any row to its nearest selected row.
    covering_graph
        Native: facility location's graph by candidate from each cell's neighbour lists
        (what ``SelectionContext.neighbor_graph`` gives), without a sort.
    greedy_facility_location
        Native lazy-greedy facility location over a sparse similarity graph (CSR by
        candidate): picks in greedy order and the objective after each pick.
    grid_covering
        Native plaid-grid covering (geometric sketching): each row's box, the number of boxes
        and the box side, for about ``target`` boxes.
    blocks(values, rows=65536)
        ``(start, values[start:start + rows])`` over a per-cell array; where it is mapped
        from disk (large neighbour lists at millions of cells, see ``neighbor_graph``), each
        block's pages are given back when the next is read.
    ArrayBuilder(shape, dtype)
        A per-cell array filled by row blocks (``put(start, block)``, then ``done()``): in a
        temporary file under ``TMPDIR`` when it is large, read back as a read-only map.

Harmonizers (``scurate_register_harmonizers``)
    HarmonizeContext
        What a harmonizer that declares a ``context`` keyword receives: the source path, the
        ``--metadata-map`` entries that apply, uns scalars, and ``used``/``record`` to say
        where each field came from (``scurate harmonize`` shows it).
    FieldRecord
        What ``context.record(field)`` returns: sources, mapped and unmapped values, notes.
    FIELDS, ONTOLOGY_FIELDS
        The canonical fields, and those that have ontology terms.
    ID_COLUMNS
        ``<field>_ontology_term_id`` for every field of ``ONTOLOGY_FIELDS``.
    OUTPUT_COLUMNS
        The columns a harmonizer returns: ``FIELDS`` then ``ID_COLUMNS``.
    INDEX_COLUMN
        The column of the frame a harmonizer sees that holds the obs names.
    id_column(field)
        ``field``'s term-id column.
    obs_column(name)
        The name a source's obs column has in that frame (``obs.<name>`` where ``name`` is a
        canonical column).
    clean_text(values)
        Values as stripped strings, with empty and "nan"-like values null.
    terms_from_ids(field, ids, where)
        Checked term ids and their labels; a bad id is a one-line ``InputError``.
    ontology
        The ontologies (CL, UBERON, EFO, MONDO, PATO, HsapDv, MmusDv, NCBITaxon, Cellosaurus):
        ``ontology.load(name)`` (an ``Ontology`` with ``lookup``, ``candidates`` and
        ``replacements`` of free text), ``ontology.term(term_id)`` (a ``Term`` or None),
        ``ontology.allowed(field, ids)``, ``ontology.text_ontologies(field, organism)``,
        ``ontology.check_term_id(field, value)``, ``ontology.looks_like_id(value)``,
        ``ontology.normalize(text)`` and ``ontology.MODEL_ORGANISMS``.

Embedders (``scurate_register_embedders``)
    Embedding
        What an embedder returns: float32 ``values``, one row per cell of every source.
    pca_embedding
        The default embedder (``pca``): PCA of log-normalized counts on the shared genes.

Sources (``scurate_register_sources``)
    Source
        The protocol a source reader's opener returns (obs, genes, obsm, X in row chunks).
    GeneTable
        What ``Source.read_genes`` returns: var names and var's string columns.
    H5adSource
        The h5ad reader (``.h5ad``), to register or to subclass: counts from X, ``.raw.X`` or
        a layer (``counts_from`` says which).
    ZarrSource
        The reader of AnnData zarr stores (``.zarr`` folders, or folders whose root attributes
        say ``encoding-type: anndata``); the same reading as ``H5adSource``.
    ReadOptions
        What an opener may take as ``read=``: where the raw counts are (``counts_layer``) and
        a value filter on obs (``obs_filter``).

Errors
    ScurateError, InputError, OptionError, PluginError
        A user's mistake, printed as one line: a bad input file or column (``InputError``),
        a bad option such as ``--param`` (``OptionError``). Any other exception from a policy
        or harmonizer stops the run with a ``PluginError`` naming the plugin.
"""

from __future__ import annotations

from scurate._compute.embed import Embedding, pca_embedding
from scurate._compute.kernels import (
    covering_graph,
    covering_radius,
    farthest_first,
    greedy_facility_location,
    grid_covering,
)
from scurate._data import ontology
from scurate._data.anndata_store import H5adSource, ZarrSource
from scurate._data.harmonization.context import FieldRecord, HarmonizeContext
from scurate._data.harmonization.fields import (  # the canonical columns a harmonizer fills
    FIELDS,
    ID_COLUMNS,
    INDEX_COLUMN,
    OUTPUT_COLUMNS,
    clean_text,
    id_column,
    obs_column,
    terms_from_ids,
)
from scurate._data.manifest import ONTOLOGY_FIELDS
from scurate._data.sources import GeneTable, ReadOptions, Source
from scurate._data.spill import Builder as ArrayBuilder
from scurate._data.spill import blocks
from scurate._engine.context import SelectionContext
from scurate._plugins.hookspecs import Register, hookimpl
from scurate.errors import InputError, OptionError, PluginError, ScurateError

__all__ = [
    "FIELDS",
    "ID_COLUMNS",
    "INDEX_COLUMN",
    "ONTOLOGY_FIELDS",
    "OUTPUT_COLUMNS",
    "ArrayBuilder",
    "Embedding",
    "FieldRecord",
    "GeneTable",
    "H5adSource",
    "HarmonizeContext",
    "InputError",
    "OptionError",
    "PluginError",
    "ReadOptions",
    "Register",
    "ScurateError",
    "SelectionContext",
    "Source",
    "ZarrSource",
    "blocks",
    "clean_text",
    "covering_graph",
    "covering_radius",
    "farthest_first",
    "greedy_facility_location",
    "grid_covering",
    "hookimpl",
    "id_column",
    "obs_column",
    "ontology",
    "pca_embedding",
    "terms_from_ids",
]

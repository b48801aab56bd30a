"""First-party metadata harmonizers, registered through the same entry point as anyone's.

scurate runs them in this order: ``cellxgene``, ``columns``, the harmonizers of other plugins
by name, then ``ontology``.
"""

from __future__ import annotations

from scurate import hookimpl
from scurate.plugin import Register

from .cellxgene import cellxgene
from .columns import columns
from .ontology import ontology


@hookimpl
def scurate_register_harmonizers(register: Register) -> None:
    register("cellxgene", cellxgene, summary="CELLxGENE-schema *_ontology_term_id columns as given")
    register("columns", columns, summary="column-name aliases and the --metadata-map file")
    register("ontology", ontology, summary="free text to CL/UBERON/EFO/... terms, exact matches")

"""First-party embedders."""

from __future__ import annotations

from scurate import hookimpl
from scurate.plugin import Register, pca_embedding


@hookimpl
def scurate_register_embedders(register: Register) -> None:
    register("pca", pca_embedding, summary="log-normalize, variable genes, PCA on a sample")

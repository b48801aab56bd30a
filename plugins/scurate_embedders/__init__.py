"""First-party embedders."""

from __future__ import annotations

from scurate import hookimpl
from scurate._compute.embed import pca_embedding
from scurate._plugins.hookspecs import Register


@hookimpl
def scurate_register_embedders(register: Register) -> None:
    register("pca", pca_embedding, summary="log-normalize, variable genes, PCA on a sample")

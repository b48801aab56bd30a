"""First-party source readers."""

from __future__ import annotations

from scurate import hookimpl
from scurate.plugin import H5adSource, Register, ZarrSource

from .soma import SomaSource


@hookimpl
def scurate_register_sources(register: Register) -> None:
    register(".h5ad", H5adSource, summary="AnnData h5ad, read in place (obs, var, X chunks)")
    register(
        ".zarr",
        ZarrSource,
        summary="AnnData zarr folder (write_zarr), read in place like h5ad",
    )
    register(
        "tiledbsoma",
        SomaSource,
        summary="TileDB-SOMA experiment folder, as CELLxGENE Census (obs filtered, X chunks)",
    )

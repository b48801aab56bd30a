"""Inputs: sources and their genes, the manifest, metadata harmonization and ontologies."""

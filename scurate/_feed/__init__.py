"""Feeding trainers: the cell loader, its torch dataset, and materialized shards."""

"""Runs: the notebook's kernel, one run end to end (papermill, run folder, ``latest``), the ledger.

Layer 7: may use every layer below; only ``lcstats.cli`` sits above it.
"""

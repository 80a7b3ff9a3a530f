"""Basics every layer may use: errors, allowed option values, file writing, provenance, resources.

The bottom layer: it imports nothing else from lcstats.
"""

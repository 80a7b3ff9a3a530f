"""The input tables: their contract, reading them from files, simulating programmes.

Layer 3 (after ``core`` and ``params``): may use ``lcstats.core`` and ``lcstats.params``; never
outcomes, estimation, reporting or running.
"""

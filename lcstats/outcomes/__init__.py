"""Outcomes computed from validated tables: learner-level follow-through and skills gaps.

Layer 4: may use ``core``, ``params`` and ``data``; never estimation, reporting or running.
"""

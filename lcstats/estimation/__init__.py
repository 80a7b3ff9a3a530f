"""Effects of coaching and how far to trust them: estimators, balance, sensitivity,
heterogeneity (dose, subgroups, manager coaching), pilot planning, and the whole evaluation.

Layer 5: may use ``core``, ``params``, ``data`` and ``outcomes``; never reporting or running.
"""

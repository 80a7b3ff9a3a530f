"""What people read: privacy rules, aggregated tables, figures, results.json and the report.

Layer 6: may use every layer below (``core`` to ``estimation``); never ``running`` or ``cli``.
"""

"""Sourcing decisions: which node serves which line.

    gather    reads what an order's facts need, and checks its references
    facts     the facts of one order (pure)
    decide    the rules' verdict, the allocation and the dates (``run`` is pure); replays
    allocate  lines to nodes under the ruleset's objective (pure)
    explain   explanations and why-not answers (pure)
    commit    reserve, record, create shipments, instruct the nodes: one transaction
    quotes    delivery options decided by these rules, and holding one (with ``options``)
    casebook  a decision kept as a scenario of a ruleset

Placing an order runs these steps in order: ``app.lifecycle.intake``.
"""

"""One package per kind of decision: its facts, its decision, its catalogue.

``sourcing`` (which node serves which line), ``returns`` (return point, disposition,
refund) and ``replenishment`` (purchase orders and transfers) are independent of each
other; ``promising`` (delivery dates, calendars, carriers, held promises) serves them
and imports none of them.
"""

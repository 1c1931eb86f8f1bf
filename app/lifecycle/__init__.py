"""The order's life around its decisions: placed, held, accepted or rejected, re-sourced,
waiting for stock, cancelled, returned.

It calls the kinds (sourcing decides again, returns settle); no kind calls it back.
"""

# Every change of an order tells its customer what changed (tracking.follow), whichever
# part of the service made it.
from app.lifecycle import tracking  # noqa: F401

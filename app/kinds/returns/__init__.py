"""Returns: where returned goods go, what happens to them, and the refund (a returns ruleset)."""

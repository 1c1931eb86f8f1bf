"""When a webhook endpoint is given up on: the same rule for nodes and subscriptions. Pure."""

from __future__ import annotations


def verdict(failures: int, gone: bool, disable_after: int) -> str | None:
    """The reason to disable an endpoint after this failure, or None to keep trying."""
    if gone:
        return "the endpoint answered 410 Gone"
    if failures >= disable_after:
        return f"{failures} failures in a row"
    return None

"""Standard Webhooks signatures: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``.

Pure. Secrets are ``whsec_`` followed by base64 of the key bytes. During a secret
rotation both signatures are sent, space-separated, so receivers holding either
secret verify the message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_in_use: list[str], message_id: str, timestamp: int, body: bytes) -> dict:
    """The three Standard Webhooks headers, one signature per secret in use."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            sign(secret, message_id, timestamp, body) for secret in secrets_in_use
        ),
    }


# How far a message's timestamp may be from now, either way (the Standard Webhooks default).
TOLERANCE_SECONDS = 300


def verify(
    secrets_in_use: list[str],
    headers: dict,
    body: bytes,
    now: int,
    tolerance: int | None = TOLERANCE_SECONDS,
) -> str | None:
    """Check a signed message the way a receiver does; return what is wrong, or None.

    ``headers`` are read case-insensitively. Any ``v1`` signature made with any of the
    secrets passes, if the timestamp is within ``tolerance`` seconds of ``now`` (None: any
    time, for a message whose channel already refuses replays).
    """
    lowered = {str(k).lower(): v for k, v in headers.items()}
    message_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (message_id and timestamp and signatures):
        return "the message lacks webhook-id, webhook-timestamp or webhook-signature"
    try:
        moment = int(timestamp)
    except (TypeError, ValueError):
        return "webhook-timestamp is not a whole number of seconds"
    if tolerance is not None and abs(now - moment) > tolerance:
        return "webhook-timestamp is too far from now"
    for secret in secrets_in_use:
        expected = sign(secret, str(message_id), moment, body)
        if any(hmac.compare_digest(expected, given) for given in str(signatures).split(" ")):
            return None
    return "no signature matches the node's secret"

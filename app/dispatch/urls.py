"""Webhook URLs that are safe to call: checked when set and again before each send.

Refused: schemes other than http and https, credentials in the URL, and hosts that
resolve to private, loopback, link-local, reserved or metadata addresses, unless
the allow-list setting (DOM_WEBHOOK_ALLOW) names the address, its network or host.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeURL(ValueError):
    """The URL may not be called."""


def allowed(allow: str):
    """Parse the allow-list setting: host names and IP networks, comma-separated."""
    hosts, networks = set(), []
    for item in (part.strip() for part in allow.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower())
    return hosts, networks


class Unresolvable(UnsafeURL):
    """The host does not resolve (now)."""


def check(url: str, allow: str = "", resolve=socket.getaddrinfo, need_dns: bool = True):
    """Return the addresses the URL's host resolves to, or raise ``UnsafeURL``.

    With ``need_dns=False`` (when a URL is set) a host that does not resolve yet is
    accepted: it is checked again, strictly, before every send.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("only http and https URLs can receive webhooks")
    if parts.username or parts.password:
        raise UnsafeURL("credentials do not belong in a webhook URL")
    host = parts.hostname
    if not host:
        raise UnsafeURL("the URL has no host")
    hosts, networks = allowed(allow)
    try:
        infos = resolve(
            host, parts.port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as exc:
        if not need_dns:
            return []
        raise Unresolvable(f"the host {host!r} does not resolve") from exc
    addresses = sorted({info[4][0] for info in infos})
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if host.lower() in hosts or any(ip in network for network in networks):
            continue
        if (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_reserved
            or ip.is_multicast
            or ip.is_unspecified
        ):
            raise UnsafeURL(
                f"{host} resolves to {address}, a private, loopback, link-local or metadata"
                " address; allow it with DOM_WEBHOOK_ALLOW"
            )
    return addresses

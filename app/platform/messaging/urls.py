"""Webhook URLs that are safe to call: checked when set and again before each send.

Refused: schemes other than http and https (in any case), credentials in the URL,
anything but printable ASCII (an international host is written in punycode), a port
outside 1-65535, and hosts that resolve to any special-purpose address: IANA's
IPv4 and IPv6 special-purpose registries (private, loopback, link-local, carrier-grade
NAT with its cloud metadata addresses, documentation, benchmarking, multicast,
reserved, unique-local, discard...), and the NAT64, 6to4, Teredo and IPv4-mapped
forms that carry such an address inside an IPv6 one. The allow-list setting
(DOM_WEBHOOK_ALLOW) names hosts or networks that may be called anyway, for
receivers on the service's own network. The sender connects to an address checked
here, never to a fresh DNS answer (``deliver.py``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

# Printable ASCII without space: what RFC 3986 lets a URL contain.
URL_CHARACTERS = re.compile(r"[!-~]+")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class UnsafeURL(ValueError):
    """The URL may not be called."""


class Unresolvable(UnsafeURL):
    """The host does not resolve (now)."""


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


def embedded(ip) -> list:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64)."""
    if ip.version == 4:
        return []
    found = []
    if ip.ipv4_mapped:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour:
        found.append(ip.sixtofour)
    if ip.teredo:
        found.extend(ip.teredo)
    if any(ip in network for network in NAT64):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def special(ip) -> bool:
    """Whether an address is special-purpose (not a public unicast host), in any form."""
    if any(special(inner) for inner in embedded(ip)):
        return True
    if ip.version == 6 and (ip.teredo or any(ip in network for network in NAT64)):
        return True  # translation prefixes reach whatever they embed: never a receiver
    return not ip.is_global or ip.is_multicast


def parse(url: str):
    """Split a URL and check its form; return ``(parts, host, port)`` or raise ``UnsafeURL``."""
    if not isinstance(url, str) or not URL_CHARACTERS.fullmatch(url):
        raise UnsafeURL("a webhook URL is printable ASCII without spaces (use punycode hosts)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL("only http and https URLs can receive webhooks")
    if parts.username or parts.password:
        raise UnsafeURL("credentials do not belong in a webhook URL")
    host = parts.hostname
    if not host:
        raise UnsafeURL("the URL has no host")
    if port == 0:
        raise UnsafeURL("the port must be between 1 and 65535")
    return parts, host, port or (443 if scheme == "https" else 80)


def check(url: str, allow: str = "", resolve=socket.getaddrinfo, need_dns: bool = True):
    """Return the addresses the URL's host resolves to, or raise ``UnsafeURL``.

    With ``need_dns=False`` (when a URL is set) a host that does not resolve yet is
    accepted: it is checked again, strictly, before every send.
    """
    _, host, port = parse(url)
    hosts, networks = allowed(allow)
    try:
        infos = resolve(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        if not need_dns:
            return []
        raise Unresolvable(f"the host {host!r} does not resolve") from exc
    addresses = sorted({info[4][0] for info in infos})
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if host.lower() in hosts or any(ip in network for network in networks):
            continue
        if special(ip):
            raise UnsafeURL(
                f"{host} resolves to {address}, a private, loopback, link-local, metadata or"
                " other special-purpose address; allow it with DOM_WEBHOOK_ALLOW"
            )
    return addresses

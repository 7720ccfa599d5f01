"""The address of the client behind a request, for per-address limits.

The socket's peer is the client unless that peer is a proxy listed in `TRUSTED_PROXIES`. Then
`X-Forwarded-For` is read right to left (each proxy appends the address it received the request
from), skipping trusted proxies: the first address that is not one of ours is the client. Entries
further left were written by the client itself and are never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from fastapi import Request

from settings import IPNetwork

UNKNOWN = "unknown"


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[IPNetwork]
) -> bool:
    return any(address in network for network in proxies)


def client_address(request: Request, trusted_proxies: Sequence[IPNetwork]) -> str:
    peer = request.client.host if request.client else UNKNOWN
    address = _parse(peer)
    if address is None or not trusted_proxies or not _trusted(address, trusted_proxies):
        return peer
    hops = [hop for value in request.headers.getlist("x-forwarded-for") for hop in value.split(",")]
    for hop in reversed(hops):
        hop_address = _parse(hop)
        if hop_address is None:
            # A malformed entry: whoever wrote it cannot be told apart, so blame the proxy.
            return str(address)
        address = hop_address
        if not _trusted(address, trusted_proxies):
            return str(address)
    return str(address)

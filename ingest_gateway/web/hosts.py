"""The address the gateway gives clients for itself, never one a client made up.

A ``Host`` header is whatever the client wrote. An answer that names the gateway by
it (the ``apiHost`` of the Segment settings analytics.js loads, the ``nextPageUrl``
of the customer list) would name ``evil.example`` to everyone a cache in front serves
it to. So ``public_base`` is:

1. ``PUBLIC_BASE_URL`` when set (its scheme, host, port and path): the request's Host
   plays no part;
2. else the request's Host and scheme when the Host is trusted: one of
   ``TRUSTED_HOSTS`` (comma-separated host names, IP addresses or ``[IPv6]``, each
   with an optional ``:port``; without one, any port matches; names compared without
   case), or, while ``TRUSTED_HOSTS`` is empty, a loopback name (``localhost``,
   ``127.0.0.1``, ``[::1]``): what ``make run`` and the tests use, and no cache in
   front of a public gateway sees those;
3. else ``ApiError(421)`` (Misdirected Request: the gateway is not configured to
   answer for that authority, RFC 9110 15.5.20) with ``Cache-Control: no-store``,
   naming the two settings for the operator.

Imports: the services (for the settings) and the error layer.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.requests import Request

from ingest_gateway.web import deps
from ingest_gateway.web.errors import ApiError

# host[:port]; a host is a name, an IPv4 address or a bracketed IPv6 one.
_HOST = re.compile(r"(?P<name>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")
LOOPBACK = "localhost,127.0.0.1,[::1]"


@lru_cache(maxsize=8)
def _trusted(hosts: str) -> frozenset[tuple[str, str | None]]:
    """``TRUSTED_HOSTS`` (or the loopback names) as (host name, port or None: any)."""
    trusted = set()
    for entry in (hosts or LOOPBACK).split(","):
        matched = _HOST.fullmatch(entry.strip())
        if matched is not None:  # (the setting's pattern refuses others at start-up)
            trusted.add((matched["name"].lower(), matched["port"]))
    return frozenset(trusted)


def is_trusted(host: str, trusted_hosts: str) -> bool:
    """Whether the Host header value ``host`` is one of ``trusted_hosts`` (or loopback)."""
    matched = _HOST.fullmatch(host)
    if matched is None:
        return False
    trusted = _trusted(trusted_hosts)
    name = matched["name"].lower()
    return (name, None) in trusted or (name, matched["port"]) in trusted


# The refusal of an untrusted Host, telling the operator what to set. (Without the
# Host: an answer never repeats one that is not trusted.)
UNTRUSTED = (
    "The request's Host is not one this gateway answers for. Set PUBLIC_BASE_URL to the"
    " gateway's public address, or list its host names in TRUSTED_HOSTS"
)


def public_base(request: Request) -> tuple[str, str]:
    """(host[:port] + path, scheme) by which clients should reach this gateway."""
    settings = deps.settings(request)
    if settings.public_base_url:
        parts = urlsplit(settings.public_base_url)
        return parts.netloc + parts.path.rstrip("/"), parts.scheme or "https"
    host = request.headers.get("host") or request.url.netloc
    if not is_trusted(host, settings.trusted_hosts):
        raise ApiError(421, UNTRUSTED, headers={"Cache-Control": "no-store"})
    return host, request.url.scheme

"""Requests the server makes on an organisation's behalf (its identity provider; later, its
sites' verification pages) go only to public https hosts.

An organisation's admin chooses those URLs, and anyone can trigger a fetch (``GET
/api/sso/start``), so without these rules the server would fetch whatever its own network can
reach (server-side request forgery): loopback services, the cloud metadata address, hosts on a
private network. Each URL must be ``https``, and its host must resolve only to global addresses,
checked before each request. ``allow_private`` (the ``sso_test_private_network`` setting, for
tests with an identity provider on loopback) lifts both rules; production leaves it off.

The request then connects to the address the check resolved (:func:`pin`), never to what the
name resolves to a moment later: a name that answered a public address to the check and a
private one to the connection (DNS rebinding) reached the server's own network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tandem.config import ascii_host
from tandem.exceptions import ConfigError

if TYPE_CHECKING:
    import httpx2


def check_url(url: str, what: str, *, allow_private: bool = False) -> str:
    """``url`` if it is an absolute https URL (http too with ``allow_private``) whose host is
    not a literal private, loopback or link-local address; else raise ConfigError (also for a
    host or port the URL parser or a resolver refuses: ``https://[``, ``:99999``, ``a..b``)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsed on access: ValueError for a bad one)
    except ValueError:
        raise ConfigError(f"the {what} is not a valid URL (its host or port)") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"the {what} must be an https:// URL")
    if ":" not in parts.hostname:
        ascii_host(parts.hostname, f"the {what}")
    if not allow_private and _private_literal(parts.hostname):
        raise ConfigError(f"the {what} must be on a public host, not {parts.hostname}")
    return url


def _private_literal(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


async def check_public(url: str, what: str, *, allow_private: bool = False) -> str | None:
    """Raise ConfigError unless ``url`` passes :func:`check_url` and its host resolves only to
    global addresses (every address it resolves to, so a name cannot hide a private one).
    Returns the address to connect to (:func:`pin`): the first it resolved to; None with
    ``allow_private`` (tests: nothing is resolved)."""
    check_url(url, what, allow_private=allow_private)
    if allow_private:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or 443, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError):
        raise ConfigError(f"the {what}'s host {host} does not resolve") from None
    addresses = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not address.is_global:
            raise ConfigError(f"the {what}'s host {host} resolves to a private address")
        addresses.append(str(address))
    if not addresses:
        raise ConfigError(f"the {what}'s host {host} does not resolve")
    return addresses[0]


def pin(request: httpx2.Request, address: str | None) -> httpx2.Request:
    """``request`` sent to ``address`` (from :func:`check_public`) in place of whatever its host
    resolves to when it connects; its Host header, its TLS server name and the certificate's
    check stay its host's. Unchanged for None (tests)."""
    import httpx2

    if address is None:
        return request
    host = request.url.host
    return httpx2.Request(
        request.method,
        request.url.copy_with(host=address),
        headers=request.headers,  # Host: the name, as built from the URL
        content=request.content,
        extensions={**request.extensions, "sni_hostname": host},
    )


async def read_bounded(response: httpx2.Response, limit: int) -> bytes | None:
    """The body of a streamed ``response``, or None once it grows past ``limit`` bytes (read no
    further); the response is closed either way."""
    try:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)
    finally:
        await response.aclose()

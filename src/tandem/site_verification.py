"""Proof that a website is the organisation's before its pages may start sessions.

An organisation's admin registers a site's origin; until it is proved, customers' pages on that
origin start no sessions (another company's origin cannot be claimed by registering it). The
proof: the site serves its verification token, unchanged, at
``<origin>/.well-known/tandem-verification``; the server fetches it once, on the admin's
request. Alternatively the server's operator approves the site (``tandem site approve``).

The token is derived from the organisation, the site and the origin with the server's
``secrets.key`` (nothing stored): it proves control of the origin for this registration only.

The fetch follows :mod:`tandem.outbound` (https on a public host, unless the test-only setting
allows loopback), has a deadline, reads at most :data:`MAX_BYTES` and follows no redirect.
"""

from __future__ import annotations

import asyncio
from typing import Final

import httpx2

from tandem import crypto, outbound
from tandem.exceptions import ConfigError, ConflictError
from tandem.storage.base import SiteRecord

PATH: Final = "/.well-known/tandem-verification"
MAX_BYTES: Final = 4096
"""Larger answers are refused (the token is 64 characters)."""


def token(box: crypto.SecretBox, site: SiteRecord) -> str:
    """The text the site must serve at :data:`PATH`."""
    return "tandem-verification=" + box.digest(
        f"{site.org_id}\n{site.site_id}\n{site.origin}", "site-verification"
    ).removeprefix("k1:")


def url(site: SiteRecord) -> str:
    return site.origin + PATH


async def check(
    box: crypto.SecretBox, site: SiteRecord, timeout: float, *, allow_private: bool = False
) -> None:
    """Fetch the site's verification page and compare it with its token. Raises ConfigError
    (not fetchable: scheme, host, network, status, size) or ConflictError (another text)."""
    address = url(site)
    await outbound.check_public(address, "site", allow_private=allow_private)
    try:
        async with asyncio.timeout(timeout):
            async with (
                httpx2.AsyncClient(timeout=httpx2.Timeout(timeout), follow_redirects=False) as http,
                http.stream("GET", address) as response,
            ):
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise ConfigError(f"{address} answered more than {MAX_BYTES} bytes")
    except TimeoutError:
        raise ConfigError(f"{address} did not answer within {timeout:g} s") from None
    except httpx2.HTTPError as exc:
        raise ConfigError(f"{address} could not be fetched ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise ConfigError(f"{address} answered HTTP {response.status_code}")
    served = bytes(body).decode("utf-8", errors="replace").strip()
    if not crypto.secrets_equal(served, token(box, site)):
        raise ConflictError(f"{address} does not serve this site's verification token")

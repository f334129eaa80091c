"""Proof that a website is the organisation's before its pages may start sessions.

An organisation's admin registers a site's origin; until it is proved, customers' pages on that
origin start no sessions (another company's origin cannot be claimed by registering it). The
proof: the site serves its verification token, unchanged, at
``<origin>/.well-known/tandem-verification``; the server fetches it once, on the admin's
request. Alternatively the server's operator approves the site (``tandem site approve``).

The token is derived from the organisation, the site and the origin with the server's
``secrets.key`` (nothing stored): it proves control of the origin for this registration only.

Or the site's DNS zone holds the same token as a TXT record of ``_tandem-verification.<host>``
(:func:`check_dns`): for sites whose web server is not easy to change. The lookup asks the
configured resolvers (``site_verification_nameservers``; else the system's), over UDP (TCP when
truncated), within the same deadline, and follows no CNAME outside the answer. DNS answers are
not authenticated here (no DNSSEC validation in the server): an attacker who can forge the
server's resolver's answers could prove an origin; use a validating resolver on a trusted path
(docs/threat-model.md).

The fetch follows :mod:`tandem.outbound` (https on a public host, unless the test-only setting
allows loopback), has a deadline, reads at most :data:`MAX_BYTES` and follows no redirect.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from tandem import crypto, outbound
from tandem.config import nameserver_address
from tandem.exceptions import ConfigError, ConflictError
from tandem.storage.base import SiteRecord

if TYPE_CHECKING:
    import dns.asyncresolver

PATH: Final = "/.well-known/tandem-verification"
DNS_LABEL: Final = "_tandem-verification"
"""The TXT record's name is this label before the origin's host."""
MAX_BYTES: Final = 4096
"""Larger answers are refused (the token is 64 characters)."""


def token(box: crypto.SecretBox, site: SiteRecord) -> str:
    """The text the site must serve at :data:`PATH`."""
    return "tandem-verification=" + box.digest(
        f"{site.org_id}\n{site.site_id}\n{site.origin}", "site-verification"
    ).removeprefix("k1:")


def _is_token(text: str, box: crypto.SecretBox, site: SiteRecord) -> bool:
    """``text`` is the site's token under a key of the secrets key ring: a token published
    before a rotation of ``secrets.key`` still proves the origin (until the key is retired)."""
    digests = box.digests(f"{site.org_id}\n{site.site_id}\n{site.origin}", "site-verification")
    found = [
        crypto.secrets_equal(text, "tandem-verification=" + d.removeprefix("k1:")) for d in digests
    ]
    return any(found)


def url(site: SiteRecord) -> str:
    return site.origin + PATH


async def check(
    box: crypto.SecretBox, site: SiteRecord, timeout: float, *, allow_private: bool = False
) -> None:
    """Fetch the site's verification page and compare it with its token. Raises ConfigError
    (not fetchable: scheme, host, network, status, size) or ConflictError (another text)."""
    import httpx2  # here: most processes never fetch a site (a tenth of a second of a start)

    address = url(site)
    try:
        async with asyncio.timeout(timeout):  # the name's look-up too
            pinned = await outbound.check_public(address, "site", allow_private=allow_private)
            async with httpx2.AsyncClient(
                timeout=httpx2.Timeout(timeout), follow_redirects=False
            ) as http:
                request = outbound.pin(http.build_request("GET", address), pinned)
                response = await http.send(request, stream=True)
                body = await outbound.read_bounded(response, MAX_BYTES)
                if body is None:
                    raise ConfigError(f"{address} answered more than {MAX_BYTES} bytes")
    except TimeoutError:
        raise ConfigError(f"{address} did not answer within {timeout:g} s") from None
    except httpx2.HTTPError as exc:
        raise ConfigError(f"{address} could not be fetched ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise ConfigError(f"{address} answered HTTP {response.status_code}")
    served = body.decode("utf-8", errors="replace").strip()
    if not _is_token(served, box, site):
        raise ConflictError(f"{address} does not serve this site's verification token")


def dns_name(site: SiteRecord) -> str | None:
    """The name whose TXT record proves the site's origin; None for an IP-address origin."""
    host = urlsplit(site.origin).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"{DNS_LABEL}.{host}" if host else None
    return None


def _resolver(nameservers: tuple[str, ...], timeout: float) -> dns.asyncresolver.Resolver:
    # dnspython is imported here, by the one check that uses it: at module level it was a tenth
    # of the start-up imports of every `tandem` command.
    import dns.asyncresolver
    import dns.nameserver
    import dns.resolver

    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(*nameserver_address(n)) for n in nameservers
        ]
    else:
        try:
            resolver = dns.asyncresolver.Resolver()
        except (dns.resolver.NoResolverConfiguration, OSError):
            raise ConfigError(
                "this server has no DNS resolver (set site_verification_nameservers)"
            ) from None
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None
    return resolver


async def check_dns(
    box: crypto.SecretBox, site: SiteRecord, timeout: float, nameservers: tuple[str, ...] = ()
) -> None:
    """Look up the site's TXT record and compare each of its texts with the token. Raises
    ConfigError (no such name or record, no answer in time, an IP-address origin) or
    ConflictError (TXT records, none with this site's token)."""
    name = dns_name(site)
    if name is None:
        raise ConfigError(
            f"{site.origin} has no DNS name: prove it with {PATH} or ask the operator"
        )
    resolver = _resolver(nameservers, timeout)
    import dns.exception
    import dns.rdatatype
    import dns.resolver

    try:
        async with asyncio.timeout(timeout):
            answer = await resolver.resolve(name, dns.rdatatype.TXT, search=False)
    except (TimeoutError, dns.exception.Timeout):
        raise ConfigError(f"no DNS answer for {name} within {timeout:g} s") from None
    except dns.resolver.NXDOMAIN:
        raise ConfigError(f"{name} does not exist in DNS") from None
    except dns.resolver.NoAnswer:
        raise ConfigError(f"{name} has no TXT record") from None
    except dns.exception.DNSException as exc:
        raise ConfigError(f"{name} could not be looked up ({type(exc).__name__})") from None
    for record in answer:
        strings: tuple[bytes, ...] = getattr(record, "strings", ())
        text = b"".join(strings).decode("utf-8", errors="replace").strip()
        if _is_token(text, box, site):
            return
    raise ConflictError(f"no TXT record of {name} holds this site's verification token")

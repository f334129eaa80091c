"""The OpenID Connect relying party against a real (in-test) provider over HTTP: the happy path
and one test per thing a broken or hostile provider, or a forged callback, can do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tandem import oidc
from tandem.exceptions import AuthenticationError
from tests.conftest import free_port
from tests.oidc_provider import OidcProvider

REDIRECT = "http://127.0.0.1:9/api/sso/callback"


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    running = OidcProvider().start()
    running.redirect_uris.add(REDIRECT)
    yield running
    running.stop()


def config(provider: OidcProvider) -> oidc.ProviderConfig:
    return oidc.ProviderConfig(provider.issuer, provider.client_id, provider.client_secret)


async def run(provider: OidcProvider, tamper: dict[str, str] | None = None) -> oidc.Identity:
    settings = config(provider)
    async with oidc.client(settings, REDIRECT) as http:
        discovery = await oidc.discover(settings, http)
        url, pending = oidc.begin(settings, discovery, REDIRECT)
        answer = httpx.get(url, follow_redirects=False)  # the browser's trip to the provider
        assert answer.status_code == 302, answer.text
        query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}
        query.update(tamper or {})
        return await oidc.finish(settings, discovery, pending, query, http, time.time())


async def test_a_sign_in_returns_the_providers_identity(provider: OidcProvider) -> None:
    provider.user = {"sub": "u-9", "preferred_username": "alice", "email": "a@example.org"}
    identity = await run(provider)
    assert identity == oidc.Identity("u-9", "alice", "a@example.org", None)


def test_the_authorization_url_carries_state_nonce_and_an_s256_challenge(
    provider: OidcProvider,
) -> None:
    discovery = oidc.Discovery(provider.issuer, f"{provider.issuer}/authorize", "t", "j")
    url, pending = oidc.begin(config(provider), discovery, REDIRECT)
    query = parse_qs(urlsplit(url).query)
    assert query["state"] == [pending.state] and query["nonce"] == [pending.nonce]
    assert query["code_challenge_method"] == ["S256"] and pending.code_verifier not in url
    assert oidc.PendingLogin.from_json(pending.to_json()) == pending


@pytest.mark.parametrize(
    ("setting", "value", "reason"),
    [
        ("issuer", "http://evil.test", "iss"),
        ("audience", "someone-else", "aud"),
        ("expired", True, "expired"),
        ("nonce", "replayed-nonce", "nonce"),
        ("foreign_key", True, "ID token refused"),
        ("deny", True, "access_denied"),
    ],
)
async def test_a_misbehaving_provider_is_refused(
    provider: OidcProvider, setting: str, value: object, reason: str
) -> None:
    setattr(provider.misbehave, setting, value)
    with pytest.raises(AuthenticationError, match=reason):
        await run(provider)


async def test_a_forged_state_is_refused_before_the_code_is_used(provider: OidcProvider) -> None:
    with pytest.raises(AuthenticationError, match="state mismatch"):
        await run(provider, {"state": "attacker"})
    assert provider.token_requests == 0


async def test_a_code_works_once(provider: OidcProvider) -> None:
    settings = config(provider)
    async with oidc.client(settings, REDIRECT) as http:
        discovery = await oidc.discover(settings, http)
        url, pending = oidc.begin(settings, discovery, REDIRECT)
        location = httpx.get(url).headers["location"]
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        await oidc.finish(settings, discovery, pending, query, http, time.time())
        with pytest.raises(AuthenticationError, match="refused the code"):
            await oidc.finish(settings, discovery, pending, query, http, time.time())


async def test_discovery_naming_another_issuer_is_refused(provider: OidcProvider) -> None:
    provider.misbehave.discovery_issuer = "http://evil.test"
    async with oidc.client(config(provider)) as http:
        with pytest.raises(AuthenticationError, match="another issuer"):
            await oidc.discover(config(provider), http)


async def test_an_unreachable_provider_fails_fast_and_clearly() -> None:
    settings = oidc.ProviderConfig(f"http://127.0.0.1:{free_port()}", "c", "s")
    started = time.monotonic()
    async with oidc.client(settings) as http:
        with pytest.raises(AuthenticationError, match="unreachable"):
            await oidc.discover(settings, http)
    assert time.monotonic() - started < 5

"""The OpenID Connect relying party against a real (in-test) provider over HTTP: the happy path,
and one test per thing a broken or hostile provider, or a forged callback, can do."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import trustme

from tandem import oidc, outbound
from tandem.exceptions import AuthenticationError, ConfigError
from tests.conftest import ServerFactory, free_port
from tests.oidc_provider import OidcProvider

REDIRECT = "http://127.0.0.1:9/api/sso/callback"


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    """A running provider that knows ``REDIRECT``; stopped at the end of the test."""
    with OidcProvider(redirect_uris={REDIRECT}) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    """The relying party's HTTP client."""
    async with oidc.client() as client:
        yield client


def config_for(provider: OidcProvider, **changes: object) -> oidc.ProviderConfig:
    config = oidc.ProviderConfig(
        provider.issuer,
        provider.client_id,
        provider.client_secret,
        allow_private_network=True,  # the test provider runs on loopback
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


async def authorize(url: str) -> dict[str, str]:
    """The browser's trip to the provider: the query it is redirected back with."""
    async with httpx2.AsyncClient(follow_redirects=False) as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(f"{REDIRECT}?")
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


@dataclasses.dataclass
class Authorized:
    """A sign-in the provider authorized, up to the browser's return with ``query``."""

    config: oidc.ProviderConfig
    discovery: oidc.Discovery
    pending: oidc.PendingLogin
    query: dict[str, str]

    async def finish(self, http: httpx2.AsyncClient, now: float | None = None) -> oidc.Identity:
        return await oidc.finish(
            self.config,
            self.discovery,
            self.pending,
            self.query,
            http,
            time.time() if now is None else now,
        )


async def authorized(
    provider: OidcProvider, http: httpx2.AsyncClient, **changes: object
) -> Authorized:
    config = config_for(provider, **changes)
    discovery = await oidc.discover(config, http)
    url, pending = oidc.begin(config, discovery, REDIRECT)
    return Authorized(config, discovery, pending, await authorize(url))


async def sign_in(
    provider: OidcProvider,
    http: httpx2.AsyncClient,
    tamper: dict[str, str] | None = None,
    **changes: object,
) -> oidc.Identity:
    signing_in = await authorized(provider, http, **changes)
    signing_in.query.update(tamper or {})
    return await signing_in.finish(http)


# -- the happy path --


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_a_sign_in_returns_the_providers_identity(
    provider: OidcProvider, http: httpx2.AsyncClient, method: str
) -> None:
    provider.user = {
        "sub": "u-9",
        "preferred_username": "alice",
        "email": "a@example.org",
        "email_verified": True,
        "name": "Alice Liddell",
    }
    identity = await sign_in(provider, http, client_auth=method)
    assert identity == oidc.Identity("u-9", "alice", "a@example.org", True, "Alice Liddell")
    assert provider.client_auth_methods == [method]


async def test_optional_claims_may_be_absent(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    provider.user = {"sub": "u-1"}
    assert await sign_in(provider, http) == oidc.Identity("u-1", None, None, False, None)


async def test_the_authorization_url_carries_state_nonce_and_an_s256_challenge(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    config = config_for(provider)
    discovery = await oidc.discover(config, http)
    assert discovery == oidc.Discovery(
        provider.issuer,
        f"{provider.issuer}/authorize",
        f"{provider.issuer}/token",
        f"{provider.issuer}/jwks",
    )
    url, pending = oidc.begin(config, discovery, REDIRECT, now=1234.5)
    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"] and query["client_id"] == [provider.client_id]
    assert query["redirect_uri"] == [REDIRECT] and query["scope"] == ["openid profile email"]
    assert query["state"] == [pending.state] and query["nonce"] == [pending.nonce]
    assert query["code_challenge_method"] == ["S256"] and pending.code_verifier not in url
    assert pending.created_at == 1234.5 and pending.redirect_uri == REDIRECT
    _, other = oidc.begin(config, discovery, REDIRECT)
    assert {other.state, other.nonce, other.code_verifier}.isdisjoint(
        {pending.state, pending.nonce, pending.code_verifier}
    )


def test_a_pending_sign_in_survives_json_and_garbage_is_refused() -> None:
    pending = oidc.PendingLogin("s", "n", "v" * 64, REDIRECT, 1.5)
    assert oidc.PendingLogin.from_json(pending.to_json()) == pending
    for garbage in ("", "{", "[]", '{"state": "s"}'):
        with pytest.raises(AuthenticationError, match="unreadable"):
            oidc.PendingLogin.from_json(garbage)


# -- a forged or replayed callback --


async def test_a_forged_state_is_refused_before_the_code_is_used(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    with pytest.raises(AuthenticationError, match="state mismatch"):
        await sign_in(provider, http, {"state": "attacker"})
    assert provider.token_requests == 0


async def test_a_callback_without_state_is_refused(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    config = config_for(provider)
    discovery = await oidc.discover(config, http)
    _, pending = oidc.begin(config, discovery, REDIRECT)
    with pytest.raises(AuthenticationError, match="state mismatch"):
        await oidc.finish(config, discovery, pending, {"code": "x"}, http, time.time())
    assert provider.token_requests == 0


async def test_a_code_works_once(provider: OidcProvider, http: httpx2.AsyncClient) -> None:
    signing_in = await authorized(provider, http)
    await signing_in.finish(http)
    with pytest.raises(AuthenticationError, match=r"refused the code \(invalid_grant\)"):
        await signing_in.finish(http)


async def test_a_code_is_useless_without_its_pkce_verifier(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    """An intercepted code, redeemed by someone else's sign-in (whose verifier differs)."""
    config = config_for(provider)
    discovery = await oidc.discover(config, http)
    url, _ = oidc.begin(config, discovery, REDIRECT)
    stolen = await authorize(url)
    _, attacker = oidc.begin(config, discovery, REDIRECT)
    query = {**stolen, "state": attacker.state}
    with pytest.raises(AuthenticationError, match=r"invalid_grant"):
        await oidc.finish(config, discovery, attacker, query, http, time.time())


async def test_a_wrong_client_secret_is_refused(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    with pytest.raises(AuthenticationError, match=r"invalid_client"):
        await sign_in(provider, http, client_secret="guessed")


# -- a misbehaving or hostile provider --


@pytest.mark.parametrize(
    ("setting", "value", "reason"),
    [
        ("issuer", "http://evil.test", "iss"),
        ("audience", "someone-else", "aud"),
        ("expired", True, "expired"),
        ("nonce", "replayed-nonce", "nonce"),
        ("foreign_key", True, "signature"),
    ],
    ids=["wrong-issuer", "wrong-audience", "expired", "wrong-nonce", "forged-signature"],
)
async def test_a_bad_id_token_is_refused(
    provider: OidcProvider, http: httpx2.AsyncClient, setting: str, value: object, reason: str
) -> None:
    setattr(provider.misbehave, setting, value)
    with pytest.raises(AuthenticationError, match=f"ID token was refused: .*{reason}"):
        await sign_in(provider, http)


async def test_only_the_keys_the_id_token_names_are_read(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    """Keys of other ids may be anything (they are never parsed); a broken key under the
    token's id is refused, not a crash; a set with more keys than allowed is refused saying
    so."""
    provider.misbehave.extra_keys = [{"kty": "RSA", "n": "!!", "e": "?", "kid": "broken"}]
    assert (await sign_in(provider, http)).subject == "u-1"
    provider.misbehave.extra_keys = [{"kty": "RSA", "n": "!!", "e": "?", "kid": "k1"}]
    with pytest.raises(AuthenticationError, match=r"ID token was refused"):
        await sign_in(provider, http)  # a broken key under the token's id: refused, no crash
    provider.misbehave.extra_keys = [{"kid": f"x{i}"} for i in range(5)]
    with pytest.raises(AuthenticationError, match=r"6 keys, more than the 5 allowed"):
        await sign_in(provider, http, max_keys=5)


async def test_a_back_channel_redirect_is_not_followed(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    """The token endpoint redirects the server's request (with the code, the verifier and the
    client's secret) to a service of the server's own host (a listener that counts
    connections, standing for a metadata service): not followed, the sign-in fails."""
    service = socket.socket()
    service.bind(("127.0.0.1", 0))
    service.listen(8)
    service.setblocking(False)
    provider.misbehave.token_redirect = f"http://127.0.0.1:{service.getsockname()[1]}/latest"
    try:
        with pytest.raises(AuthenticationError, match=r"token endpoint answered HTTP 307"):
            await sign_in(provider, http)
        with pytest.raises(BlockingIOError):
            service.accept()  # nothing connected to it
    finally:
        service.close()


@pytest.mark.parametrize(
    ("forge", "claims", "reason"),
    [
        ("none", {}, "'none' is not allowed"),
        ("hs256-public-key", {}, "'HS256' is not allowed"),
        ("unknown-kid", {}, "no key 'not-published'"),
        (None, {"nbf": int(time.time()) + 3600}, "not yet valid"),
        (None, {"iat": int(time.time()) + 10**6}, "issued in the future"),
        (None, {"iat": int(time.time()) - 3600}, "issued too long ago"),
        (None, {"aud": ["another-client"], "azp": "tandem"}, "aud"),
        (None, {"sub": ""}, "sub"),
        (None, {"sub": 5}, "sub"),
    ],
    ids=[
        "alg-none",
        "hs256-keyed-with-the-public-key",
        "key-id-not-published",
        "not-yet-valid",
        "far-future-iat",
        "old-iat-unexpired",
        "another-audience-with-our-azp",
        "empty-subject",
        "numeric-subject",
    ],
)
async def test_a_forged_or_odd_id_token_is_refused(
    provider: OidcProvider,
    http: httpx2.AsyncClient,
    forge: str | None,
    claims: dict[str, object],
    reason: str,
) -> None:
    provider.misbehave.forge = forge
    provider.misbehave.extra_claims = claims
    with pytest.raises(AuthenticationError, match=f"ID token was refused: .*{reason}"):
        await sign_in(provider, http)


async def test_several_audiences_need_this_client_as_authorized_party(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    provider.misbehave.audience = [provider.client_id, "another-client"]
    with pytest.raises(AuthenticationError, match=r"azp"):
        await sign_in(provider, http)
    provider.misbehave.azp = "another-client"
    with pytest.raises(AuthenticationError, match=r"azp"):
        await sign_in(provider, http)
    provider.misbehave.azp = provider.client_id
    assert (await sign_in(provider, http)).subject == "u-1"


async def test_a_token_from_the_future_is_refused(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    """The caller's clock decides: an hour behind the provider's, the token is not yet valid."""
    signing_in = await authorized(provider, http)
    with pytest.raises(AuthenticationError, match=r"future"):
        await signing_in.finish(http, time.time() - 3600)


async def test_a_refusal_by_the_provider_is_reported(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    provider.misbehave.deny = True
    with pytest.raises(AuthenticationError, match=r"answered access_denied"):
        await sign_in(provider, http)
    assert provider.token_requests == 0


async def test_discovery_naming_another_issuer_is_refused(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    provider.misbehave.discovery_issuer = "http://evil.test"
    with pytest.raises(AuthenticationError, match=r"names another issuer"):
        await oidc.discover(config_for(provider), http)


async def test_discovery_of_an_issuer_with_a_trailing_slash_must_match_exactly(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    with pytest.raises(AuthenticationError, match=r"names another issuer"):
        await oidc.discover(config_for(provider, issuer=f"{provider.issuer}/"), http)


async def test_an_unreachable_provider_fails_fast_and_clearly(http: httpx2.AsyncClient) -> None:
    config = oidc.ProviderConfig(
        f"http://127.0.0.1:{free_port()}", "c", "s", allow_private_network=True
    )
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match=r"discovery unreachable"):
        await oidc.discover(config, http)
    assert time.monotonic() - started < 5


async def test_a_provider_that_never_answers_times_out(
    provider: OidcProvider, http: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.misbehave.stall = True
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match=r"did not answer within 0.3 s"):
        await oidc.discover(config_for(provider, timeout_seconds=0.3), http)
    assert time.monotonic() - started < 3


async def test_a_provider_on_loopback_or_plain_http_is_not_contacted_outside_tests(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    """Server-side request forgery: an admin's issuer on http://127.0.0.1:<port> (any service
    of the server's own host). Without the test-only setting, nothing is fetched."""
    with pytest.raises(AuthenticationError, match=r"issuer must be an https:// URL"):
        await oidc.discover(config_for(provider, allow_private_network=False), http)
    assert provider.requests == 0


async def test_a_sign_in_is_never_sent_to_another_origin_than_the_issuers(
    provider: OidcProvider, http: httpx2.AsyncClient
) -> None:
    """An open redirect through /api/sso/start: discovery naming any site as the place to send
    the browser."""
    provider.misbehave.authorization_endpoint = "http://evil.test/authorize"
    with pytest.raises(AuthenticationError, match=r"not on the issuer's origin"):
        await oidc.discover(config_for(provider), http)


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.example/",  # plain http
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://localhost/",
        "https://10.1.2.3/",
        "https://192.168.0.1/",
        "https://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
        "https://100.64.0.1/",  # shared address space
        "https:///no-host",
    ],
)
def test_provider_urls_must_be_https_on_public_hosts(url: str) -> None:
    with pytest.raises(ConfigError):
        outbound.check_url(url, "issuer")
    outbound.check_url("https://idp.example/", "issuer")  # the kind that passes


async def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    """Names are resolved before each request: this host's own name points at loopback or the
    local network (or does not resolve), never at a global address."""
    with pytest.raises(ConfigError, match=r"private address|does not resolve"):
        await outbound.check_public(f"https://{socket.gethostname()}/", "issuer")


REBINDING = "idp.rebinding.test"


async def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_connected_to(
    http: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the provider's name answers a global address to the check and loopback
    (a service of the server's own host, here a listener that counts connections) when the
    request connects. The request goes to the address that was checked."""
    service = socket.socket()
    service.bind(("127.0.0.1", 0))
    service.listen(8)
    service.setblocking(False)
    port = service.getsockname()[1]
    real = socket.getaddrinfo
    answers: list[str] = []

    def rebinding(host: object, *args: object, **kwargs: object) -> object:
        if (host.decode() if isinstance(host, bytes) else host) != REBINDING:  # anyio: bytes
            return real(host, *args, **kwargs)  # type: ignore[arg-type]
        answers.append("192.0.0.9" if not answers else "127.0.0.1")  # global, then loopback
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[-1], port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    config = oidc.ProviderConfig(f"https://{REBINDING}:{port}", "c", "s", timeout_seconds=0.5)
    try:
        with pytest.raises(AuthenticationError):
            await oidc.discover(config, http)
        assert answers and answers[0] == "192.0.0.9"  # the check ran, and passed
        try:
            connected: socket.socket | None = service.accept()[0]
        except BlockingIOError:
            connected = None
        if connected is not None:
            connected.close()
        assert connected is None, "the request connected to the loopback service"
    finally:
        service.close()


async def test_a_pinned_request_keeps_its_hosts_name_for_tls(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The pinned request connects to the checked address but checks the certificate against,
    and names in Host and SNI, the provider's name: a certificate for another name fails."""
    ca = trustme.CA()
    cert = ca.issue_cert("idp.pinned.test")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    server = server_factory(tls_cert=cert_path, tls_key=key_path)
    port = urlsplit(server.base).port
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with oidc.client(verify=context) as client:
        request = client.build_request("GET", f"https://idp.pinned.test:{port}/healthz")
        answer = await client.send(outbound.pin(request, "127.0.0.1"))
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        wrong = client.build_request("GET", f"https://idp.other.test:{port}/healthz")
        with pytest.raises(httpx2.ConnectError):  # a new connection: not the first one's
            await client.send(outbound.pin(wrong, "127.0.0.1"))


async def test_a_name_whose_look_up_never_answers_fails_within_the_deadline(
    http: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's name server never answers: the sign-in fails within the request's
    deadline, while the look-up is still under way (it was outside the deadline, and held the
    sign-in for as long as the resolver's own retries)."""
    answered = threading.Event()
    real = socket.getaddrinfo

    def silent(host: object, *args: object, **kwargs: object) -> object:
        if (host.decode() if isinstance(host, bytes) else host) != "idp.silent.test":
            return real(host, *args, **kwargs)  # type: ignore[arg-type]
        answered.wait(30)  # released when the test ends
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.0.9", 443))]

    monkeypatch.setattr(socket, "getaddrinfo", silent)
    try:
        with pytest.raises(AuthenticationError, match=r"did not answer within 0.3 s"):
            config = oidc.ProviderConfig("https://idp.silent.test", "c", "s", timeout_seconds=0.3)
            await oidc.discover(config, http)
        assert not answered.is_set()  # given up while the look-up was still waiting
    finally:
        answered.set()

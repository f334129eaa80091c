"""OpenID Connect relying party: the authorization-code flow with PKCE (S256) and a nonce.

authlib does the OAuth 2 client work (the authorization URL, the token request, client
authentication by ``client_secret_basic`` or ``client_secret_post``); joserfc, authlib's JOSE
library, checks the ID token: signature against the provider's published keys (asymmetric
algorithms only), issuer, audience and authorized party, expiry and issue time against the
caller's clock, and the nonce of this sign-in. HTTP goes through httpx2, the client authlib uses.
httpx2, authlib and joserfc are imported where a sign-in uses them: a server whose organisations
have no provider never loads them (a tenth of a second of every start).

Every failure is an :class:`~tandem.exceptions.AuthenticationError` whose message says what went
wrong (for the audit trail; it never contains a secret). Every request has a deadline, so a
provider that does not answer cannot hold a sign-in open.

The caller keeps the :class:`PendingLogin` server-side between :func:`begin` and :func:`finish`
and enforces its lifetime (``created_at`` says when it was made).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

import msgspec

from tandem import crypto, outbound
from tandem.exceptions import AuthenticationError, ConfigError

if TYPE_CHECKING:
    import httpx2

ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
"""Signatures accepted on ID tokens: never ``none``, never a shared-secret (HS*) algorithm."""

ClientAuthMethod = Literal["client_secret_basic", "client_secret_post"]


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderConfig:
    issuer: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    client_auth: ClientAuthMethod = "client_secret_basic"
    allow_private_network: bool = False
    """Test only: allow http and private or loopback hosts (:mod:`tandem.outbound`)."""
    max_keys: int = 20
    """Most keys its key set (JWKS) may publish (``sso_max_signing_keys``)."""
    timeout_seconds: float = 10.0
    """Deadline of each request to the provider, whole (the name's look-up, connect, send, read
    the entire answer) (``sso_timeout_seconds``)."""
    max_response_bytes: int = 1 << 20
    """Larger answers from the provider are refused unread (``sso_max_response_bytes``)."""
    leeway_seconds: int = 60
    """Clock skew tolerated on ``exp`` and ``iat`` (``sso_clock_leeway_seconds``)."""
    max_token_age_seconds: int = 600
    """An ID token issued longer ago than this (plus the leeway) is refused, even if not
    expired (``sso_max_token_age_seconds``)."""
    mfa_acr: tuple[str, ...] = ()
    """``acr`` values that show the provider asked for a second factor (the organisation's
    setting): with these or :attr:`mfa_amr` set, an ID token asserting neither is refused,
    and the sign-in asks for them (``acr_values``)."""
    mfa_amr: tuple[str, ...] = ()
    """``amr`` values (RFC 8176: ``mfa``, ``hwk``, ...) of which one shows a second factor."""

    @property
    def requires_mfa(self) -> bool:
        return bool(self.mfa_acr or self.mfa_amr)


@dataclasses.dataclass(frozen=True, slots=True)
class Discovery:
    """The endpoints from the provider's discovery document (safe to cache per issuer)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclasses.dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the server keeps between sending the browser to the provider and its return.

    Secret (the state and the PKCE verifier): keep it server-side, never in the browser.
    """

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    created_at: float

    def to_json(self) -> str:
        return msgspec.json.encode(self).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> PendingLogin:
        try:
            return msgspec.json.decode(text, type=cls)
        except msgspec.DecodeError:  # ValidationError is a DecodeError
            raise _failure("the pending sign-in is unreadable") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    username: str | None
    email: str | None
    email_verified: bool
    name: str | None


def identity_key(org_id: str, issuer: str, subject: str) -> str:
    """How a provider account is stored on the user it is bound to: the organisation, the
    issuer and the subject together (a subject is unique only within its issuer; never the
    provider's ``preferred_username``, which the provider's admin can set to anything)."""
    return json.dumps([org_id, issuer, subject], separators=(",", ":"))


def _failure(reason: str) -> AuthenticationError:
    return AuthenticationError(f"identity provider sign-in failed: {reason}")


def printable(text: str, limit: int = 100) -> str:
    """Provider- or browser-supplied text made safe for a log line."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text[:limit])


def client(verify: ssl.SSLContext | bool = True, timeout: float = 10.0) -> httpx2.AsyncClient:
    """An HTTP client for talking to providers: short timeouts, redirects not followed, no
    connection kept for another request (each is pinned to the address its name was checked
    at, :func:`tandem.outbound.pin`, and a kept connection, found by that address, would carry
    another name's request over the TLS session of the first). Use it as ``async with``.
    ``verify``: the certificate authorities (tests trust their own); ``timeout``: each step's
    (each whole request has the provider's own deadline, :attr:`ProviderConfig.timeout_seconds`)."""
    import httpx2

    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout),
        follow_redirects=False,
        headers={"Accept": "application/json"},
        limits=httpx2.Limits(max_keepalive_connections=0),
        verify=verify,
    )


async def _exchange(
    http: httpx2.AsyncClient, request: httpx2.Request, what: str, config: ProviderConfig
) -> tuple[int, dict[str, Any]]:
    """Send ``request`` (to a public https host only, :mod:`tandem.outbound`); its status and
    JSON object body, read within the deadline and size."""
    import httpx2

    try:
        async with asyncio.timeout(config.timeout_seconds):  # the name's look-up too
            try:
                address = await outbound.check_public(
                    str(request.url), what, allow_private=config.allow_private_network
                )
            except ConfigError as exc:
                raise _failure(str(exc)) from None
            response = await http.send(outbound.pin(request, address), stream=True)
            body = await outbound.read_bounded(response, config.max_response_bytes)
            if body is None:
                raise _failure(f"{what} answer is too large")
    except TimeoutError:
        raise _failure(f"{what} did not answer within {config.timeout_seconds:g} s") from None
    except httpx2.HTTPError as exc:
        reason = printable(str(exc)) or type(exc).__name__
        raise _failure(f"{what} unreachable: {reason}") from None
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, dict):
        raise _failure(f"{what} answered HTTP {response.status_code} without a JSON object")
    return response.status_code, value


async def _get_json(
    http: httpx2.AsyncClient, url: str, what: str, config: ProviderConfig
) -> dict[str, Any]:
    status, value = await _exchange(http, http.build_request("GET", url), what, config)
    if status != 200:
        raise _failure(f"{what} answered HTTP {status}")
    return value


def _usable_endpoint(url: object, allow_private: bool) -> bool:
    """An absolute https URL on a public host (:func:`tandem.outbound.check_url`)."""
    if not isinstance(url, str):
        return False
    try:
        outbound.check_url(url, "endpoint", allow_private=allow_private)
    except ConfigError:
        return False
    return True


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


async def discover(config: ProviderConfig, client: httpx2.AsyncClient) -> Discovery:
    """The provider's endpoints from its discovery document, whose ``issuer`` must be the
    configured one, exactly (OpenID Connect Discovery 1.0, section 4.3)."""
    allow = config.allow_private_network
    try:
        outbound.check_url(config.issuer, "issuer", allow_private=allow)
    except ConfigError as exc:
        raise _failure(str(exc)) from None
    url = f"{config.issuer.rstrip('/')}/.well-known/openid-configuration"
    document = await _get_json(client, url, "discovery", config)
    if document.get("issuer") != config.issuer:
        raise _failure("the discovery document names another issuer")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not _usable_endpoint(document.get(name), allow):
            raise _failure(f"the discovery document has no usable {name}")
    # The browser is sent there: on the issuer's own origin, so that a sign-in start cannot
    # be made a redirect to any site (an open redirect through this server).
    if _origin(document["authorization_endpoint"]) != _origin(config.issuer):
        raise _failure("the authorization_endpoint is not on the issuer's origin")
    return Discovery(
        issuer=config.issuer,
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        jwks_uri=document["jwks_uri"],
    )


def begin(
    config: ProviderConfig,
    discovery: Discovery,
    redirect_uri: str,
    entropy: crypto.Entropy = crypto.system_entropy,
    *,
    now: float | None = None,
) -> tuple[str, PendingLogin]:
    """The URL to send the browser to, and what to keep (server-side) until it comes back."""
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    pending = PendingLogin(
        state=crypto.new_token(entropy),
        nonce=crypto.new_token(entropy),
        code_verifier=crypto.new_token(entropy, 48),  # 64 characters (RFC 7636: 43 to 128)
        redirect_uri=redirect_uri,
        created_at=time.time() if now is None else now,
    )
    scopes = config.scopes if "openid" in config.scopes else ("openid", *config.scopes)
    challenge: str = create_s256_code_challenge(pending.code_verifier)  # type: ignore[no-untyped-call]
    url = prepare_grant_uri(
        discovery.authorization_endpoint,
        config.client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=scopes,
        state=pending.state,
        nonce=pending.nonce,
        code_challenge=challenge,
        code_challenge_method="S256",
        # Asked for, not trusted: the ID token's acr or amr is checked when it comes back.
        **({"acr_values": " ".join(config.mfa_acr)} if config.mfa_acr else {}),
    )
    return str(url), pending


async def _token_request(
    config: ProviderConfig,
    discovery: Discovery,
    pending: PendingLogin,
    code: str,
    http: httpx2.AsyncClient,
) -> dict[str, Any]:
    from authlib.oauth2.auth import ClientAuth
    from authlib.oauth2.rfc6749.parameters import prepare_token_request

    body = prepare_token_request(
        "authorization_code",
        redirect_uri=pending.redirect_uri,
        code=code,
        code_verifier=pending.code_verifier,
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    auth = ClientAuth(config.client_id, config.client_secret, config.client_auth)
    url, headers, body = auth.prepare("POST", discovery.token_endpoint, headers, body)  # type: ignore[no-untyped-call]
    request = http.build_request("POST", url, headers=headers, content=body)
    status, token = await _exchange(http, request, "token endpoint", config)
    if status != 200 or "error" in token:
        error = token.get("error")
        reason = printable(error) if isinstance(error, str) else f"HTTP {status}"
        raise _failure(f"the token endpoint refused the code ({reason})")
    return token


def _signing_keys(config: ProviderConfig, id_token: str, keys: dict[str, Any]) -> list[Any]:
    """The published keys that may have signed ``id_token``: those with its key id (all, if it
    names none). Only these are read (each key costs the server's event loop its parsing), and
    a key set of more than ``config.max_keys`` keys is refused unread."""
    from joserfc.errors import JoseError
    from joserfc.jws import extract_compact

    published = keys.get("keys")
    if not isinstance(published, list):
        raise _failure("the key set (JWKS) has no list of keys")
    if len(published) > config.max_keys:
        raise _failure(
            f"the key set (JWKS) has {len(published)} keys, more than the {config.max_keys} "
            "allowed (sso_max_signing_keys)"
        )
    try:
        kid = extract_compact(id_token.encode()).headers().get("kid")
    except (JoseError, ValueError, TypeError) as exc:
        detail = getattr(exc, "description", "") or type(exc).__name__
        raise _failure(f"the ID token was refused: {printable(str(detail))}") from None
    if kid is None:
        return published
    named = [key for key in published if isinstance(key, dict) and key.get("kid") == kid]
    if not named:
        raise _failure(f"the ID token was refused: no key {printable(str(kid))!r} in the key set")
    return named


def _verify_id_token(
    config: ProviderConfig,
    discovery: Discovery,
    pending: PendingLogin,
    id_token: str,
    keys: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    try:
        key_set = KeySet.import_key_set({"keys": _signing_keys(config, id_token, keys)})
        decoded = jwt.decode(id_token, key_set, algorithms=ALGORITHMS)
        jwt.JWTClaimsRegistry(
            now=int(now),
            leeway=config.leeway_seconds,
            iss={"essential": True, "value": discovery.issuer},
            aud={"essential": True, "value": config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": pending.nonce},
        ).validate(decoded.claims)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        detail = getattr(exc, "description", "") or getattr(exc, "error", "")
        reason = printable(str(detail)) if detail else type(exc).__name__
        raise _failure(f"the ID token was refused: {reason}") from None
    claims = decoded.claims
    if claims["iat"] < now - config.max_token_age_seconds - config.leeway_seconds:
        raise _failure("the ID token was refused: issued too long ago")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != config.client_id:
        raise _failure("the ID token was refused: it was issued to another party (azp)")
    subject = claims["sub"]
    if not isinstance(subject, str) or len(subject) > 255:
        raise _failure("the ID token was refused: invalid subject")
    if config.requires_mfa and not second_factor_asserted(config, claims):
        acr, amr = claims.get("acr"), claims.get("amr")
        raise _failure(
            "the ID token asserts no second factor (acr "
            f"{printable(acr) if isinstance(acr, str) else 'none'!r}, amr "
            f"{printable(' '.join(map(str, amr))) if isinstance(amr, list) else 'none'!r}); "
            "the organisation requires acr in "
            f"{list(config.mfa_acr)} or an amr in {list(config.mfa_amr)}"
        )
    return claims


def second_factor_asserted(config: ProviderConfig, claims: Mapping[str, Any]) -> bool:
    """Whether the (verified) ID token's ``acr`` is one of :attr:`ProviderConfig.mfa_acr`, or
    one of its ``amr`` values (a list of strings, RFC 8176) one of
    :attr:`ProviderConfig.mfa_amr`. A provider that asserts nothing asserts no second factor."""
    acr, amr = claims.get("acr"), claims.get("amr")
    if isinstance(acr, str) and acr in config.mfa_acr:
        return True
    return isinstance(amr, list) and any(
        isinstance(method, str) and method in config.mfa_amr for method in amr
    )


async def finish(
    config: ProviderConfig,
    discovery: Discovery,
    pending: PendingLogin,
    callback_query: Mapping[str, str],
    client: httpx2.AsyncClient,
    now: float,
) -> Identity:
    """Check the provider's answer (the callback's query), exchange the code for tokens and
    check the ID token. ``now`` is the caller's clock (seconds since the epoch)."""
    if not crypto.secrets_equal(callback_query.get("state", ""), pending.state):
        raise _failure("state mismatch")
    error = callback_query.get("error")
    if error is not None:
        raise _failure(f"the provider answered {printable(error)}")
    code = callback_query.get("code", "")
    if not code or len(code) > 2048:
        raise _failure("the provider sent no authorization code")
    token = await _token_request(config, discovery, pending, code, client)
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise _failure("the token endpoint sent no ID token")
    keys = await _get_json(client, discovery.jwks_uri, "key set (JWKS)", config)
    claims = _verify_id_token(config, discovery, pending, id_token, keys, now)

    def text(name: str) -> str | None:
        value = claims.get(name)
        return value[:200] if isinstance(value, str) and value else None

    verified = claims.get("email_verified")
    return Identity(
        subject=claims["sub"],
        username=text("preferred_username"),
        email=text("email"),
        email_verified=verified is True or verified == "true",
        name=text("name"),
    )

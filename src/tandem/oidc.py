"""OpenID Connect relying party: the authorization-code flow with PKCE, on authlib.

authlib's OAuth 2 client builds the authorization URL (state, nonce, S256 challenge) and exchanges
the code; joserfc (authlib's JOSE library) checks the ID token: signature against the provider's
published keys, issuer, audience, expiry, issue time and the nonce of this sign-in. Every failure
is an :class:`~tandem.exceptions.AuthenticationError` with a reason for the audit trail.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from authlib.common.errors import AuthlibBaseError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tandem import crypto
from tandem.exceptions import AuthenticationError

ALGORITHMS = ["RS256", "ES256", "PS256"]
"""Signatures accepted on ID tokens (never ``none``, never a shared-secret algorithm)."""
LEEWAY_SECONDS = 60
TIMEOUT_SECONDS = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderConfig:
    issuer: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = ("openid", "profile", "email")


@dataclasses.dataclass(frozen=True, slots=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclasses.dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the server keeps between sending the browser to the provider and its return."""

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PendingLogin:
        return cls(**json.loads(text))


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    username: str | None
    email: str | None
    name: str | None


def client(config: ProviderConfig, redirect_uri: str | None = None) -> AsyncOAuth2Client:
    """An HTTP client that speaks OAuth 2 to the provider (close it after use)."""
    return AsyncOAuth2Client(
        client_id=config.client_id,
        client_secret=config.client_secret,
        scope=" ".join(config.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=TIMEOUT_SECONDS,
    )


async def _get_json(http: AsyncOAuth2Client, url: str, what: str) -> dict[str, Any]:
    try:
        response = await http.request("GET", url, withhold_token=True)
        response.raise_for_status()
        value = response.json()
    except Exception as exc:  # network, HTTP status, not JSON: all the same to the caller
        raise AuthenticationError(f"identity provider unreachable ({what}): {exc}") from None
    if not isinstance(value, dict):
        raise AuthenticationError(f"identity provider sent a malformed {what}")
    return value


async def discover(config: ProviderConfig, http: AsyncOAuth2Client) -> Discovery:
    """The provider's endpoints from its discovery document; its issuer must be the one
    configured, exactly (OpenID Connect Discovery 1.0, section 4.3)."""
    issuer = config.issuer.rstrip("/")
    document = await _get_json(http, f"{issuer}/.well-known/openid-configuration", "discovery")
    if document.get("issuer") != issuer:
        raise AuthenticationError("identity provider's discovery names another issuer")
    try:
        return Discovery(
            issuer=issuer,
            authorization_endpoint=str(document["authorization_endpoint"]),
            token_endpoint=str(document["token_endpoint"]),
            jwks_uri=str(document["jwks_uri"]),
        )
    except KeyError as exc:
        raise AuthenticationError(f"identity provider's discovery lacks {exc}") from None


def begin(
    config: ProviderConfig,
    discovery: Discovery,
    redirect_uri: str,
    entropy: crypto.Entropy = crypto.system_entropy,
) -> tuple[str, PendingLogin]:
    """The URL to send the browser to, and what to keep until it comes back."""
    pending = PendingLogin(
        state=crypto.new_token(entropy),
        nonce=crypto.new_token(entropy),
        code_verifier=crypto.new_token(entropy, 48),
        redirect_uri=redirect_uri,
    )
    oauth = client(config, redirect_uri)
    url, _ = oauth.create_authorization_url(
        discovery.authorization_endpoint,
        state=pending.state,
        code_verifier=pending.code_verifier,
        nonce=pending.nonce,
    )
    return str(url), pending


async def finish(
    config: ProviderConfig,
    discovery: Discovery,
    pending: PendingLogin,
    query: Mapping[str, str],
    http: AsyncOAuth2Client,
    now: float,
) -> Identity:
    """Check the provider's answer (the callback's query), exchange the code and check the ID
    token. Raises AuthenticationError saying what was wrong."""
    if "error" in query:
        raise AuthenticationError(f"identity provider refused: {query['error'][:100]}")
    if not crypto.secrets_equal(query.get("state", ""), pending.state):
        raise AuthenticationError("identity provider sign-in failed: state mismatch")
    code = query.get("code", "")
    if not code:
        raise AuthenticationError("identity provider sent no code")
    try:
        token = await http.fetch_token(
            discovery.token_endpoint,
            grant_type="authorization_code",
            code=code,
            redirect_uri=pending.redirect_uri,
            code_verifier=pending.code_verifier,
        )
    except (AuthlibBaseError, Exception) as exc:
        raise AuthenticationError(f"identity provider refused the code: {exc}") from None
    id_token = token.get("id_token") if isinstance(token, Mapping) else None
    if not isinstance(id_token, str):
        raise AuthenticationError("identity provider sent no ID token")
    keys = await _get_json(http, discovery.jwks_uri, "keys")
    try:
        decoded = jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=ALGORITHMS)  # type: ignore[arg-type]
        jwt.JWTClaimsRegistry(
            now=int(now),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": discovery.issuer},
            aud={"essential": True, "value": config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": pending.nonce},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        detail = getattr(exc, "description", "") or exc.__class__.__name__
        raise AuthenticationError(f"identity provider's ID token refused: {detail}") from None
    claims = decoded.claims
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != config.client_id:
        raise AuthenticationError("identity provider's ID token is for another party (azp)")

    def text(name: str) -> str | None:
        value = claims.get(name)
        return value[:200] if isinstance(value, str) else None

    return Identity(
        subject=str(claims["sub"])[:200],
        username=text("preferred_username"),
        email=text("email"),
        name=text("name"),
    )

"""A small but real OpenID Connect provider for tests, served by uvicorn on loopback in a thread.

Discovery, a JWKS with an RSA key made at start, an authorization endpoint that signs in one
configured user without asking, and a token endpoint that checks the client (``client_secret_basic``
or ``client_secret_post``), the code (single use, short-lived, bound to client and redirect URI)
and the PKCE verifier (S256 only) before issuing an RS256 ID token and an access token.

:class:`Misbehaviour` makes it act like a broken or hostile provider.

Use::

    with OidcProvider(redirect_uris={"http://127.0.0.1:9/cb"}) as provider:
        ...  # provider.issuer, provider.client_id, provider.client_secret

or ``OidcProvider().start()`` ... ``.stop()``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.conftest import free_port

CODE_SECONDS = 60
TOKEN_SECONDS = 300

_SPARE_KEYS: list[tuple[RSAKey, RSAKey]] = []
"""Key pairs of providers that have stopped, for the next ones in this process: a 2048-bit RSA
key takes a tenth of a second or more of CPU to make, and every OIDC test starts a provider with
two. Providers running at the same time never share a key; a stopped one's keys are no longer
served or signed with."""
_SPARE_KEYS_LOCK = threading.Lock()


def _take_keys() -> tuple[RSAKey, RSAKey]:
    """The provider's signing key (in its JWKS) and a foreign key with the same "kid"."""
    with _SPARE_KEYS_LOCK:
        if _SPARE_KEYS:
            return _SPARE_KEYS.pop()
    return (
        RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"}),
        RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"}),
    )


@dataclasses.dataclass
class Misbehaviour:
    """Ways to break the provider; the defaults are a well-behaved one."""

    issuer: str | None = None  # "iss" of the ID token
    audience: str | list[str] | None = None  # "aud" of the ID token
    azp: str | None = None  # "azp" of the ID token (absent unless set)
    expired: bool = False  # "iat" an hour ago, "exp" half an hour ago
    nonce: str | None = None  # "nonce" of the ID token instead of the requested one
    foreign_key: bool = False  # sign with a key not in the JWKS (same "kid")
    deny: bool = False  # /authorize answers error=access_denied
    discovery_issuer: str | None = None  # "issuer" of the discovery document
    stall: bool = False  # discovery does not answer (until the provider stops)
    authorization_endpoint: str | None = None  # where discovery sends browsers instead
    token_redirect: str | None = None  # the token endpoint answers 307 to this URL
    forge: str | None = None  # "none", "hs256-public-key" or "unknown-kid": the ID token's
    # signature (unsigned; HMAC keyed with the published public key; a key id not published)
    extra_claims: dict[str, Any] = dataclasses.field(default_factory=dict)  # on the ID token
    extra_keys: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # JWKS after ours


class OidcProvider:
    def __init__(
        self,
        client_id: str = "tandem",
        client_secret: str = "provider-secret",
        *,
        redirect_uris: Iterable[str] = (),
        user: dict[str, Any] | None = None,
    ) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris: set[str] = set(redirect_uris)
        self.user: dict[str, Any] = user or {"sub": "u-1", "preferred_username": "alice"}
        self.misbehave = Misbehaviour()
        self.key, self.other_key = _take_keys()
        self._keys_returned = False
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests = 0
        self.requests = 0  # every request the provider received
        self.client_auth_methods: list[str] = []  # as seen by the token endpoint
        self._stopping = threading.Event()
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    # -- life cycle (as tests/conftest.py's RunningServer) --

    def start(self) -> OidcProvider:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("provider did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if not self.thread.is_alive() and not self._keys_returned:  # it signs no more
            self._keys_returned = True
            with _SPARE_KEYS_LOCK:
                _SPARE_KEYS.append((self.key, self.other_key))

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- endpoints --

    async def discovery(self, request: Request) -> Response:
        self.requests += 1
        if self.misbehave.stall:
            deadline = time.monotonic() + 30
            while not self._stopping.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        return JSONResponse(
            {
                "issuer": self.misbehave.discovery_issuer or self.issuer,
                "authorization_endpoint": self.misbehave.authorization_endpoint
                or f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False), *self.misbehave.extra_keys]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        redirect_uri = q.get("redirect_uri", "")
        # Never redirect to an unregistered URI, not even with an error.
        if q.get("client_id") != self.client_id or redirect_uri not in self.redirect_uris:
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        back: dict[str, str] = {}
        if "state" in q:
            back["state"] = q["state"]
        challenge = q.get("code_challenge", "")
        if q.get("response_type") != "code":
            back["error"] = "unsupported_response_type"
        elif q.get("code_challenge_method") != "S256" or not 43 <= len(challenge) <= 128:
            back["error"] = "invalid_request"
        elif "openid" not in q.get("scope", "").split():
            back["error"] = "invalid_scope"
        elif self.misbehave.deny:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "challenge": challenge,
                "nonce": q.get("nonce"),
                "expires": time.time() + CODE_SECONDS,
            }
            back["code"] = code
        return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    def _client_method(self, request: Request, form: dict[str, str]) -> str | None:
        """How the client authenticated, if it did correctly."""
        header = request.headers.get("authorization", "")
        in_form = "client_secret" in form
        if header[:6].lower() == "basic ":
            if in_form:  # RFC 6749 2.3: one method only
                return None
            try:
                pair = base64.b64decode(header[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            given_id, _, given_secret = pair.partition(":")
            given_id, given_secret = unquote(given_id), unquote(given_secret)
            method = "client_secret_basic"
        elif in_form:
            given_id, given_secret = form.get("client_id", ""), form["client_secret"]
            method = "client_secret_post"
        else:
            return None
        ok = hmac.compare_digest(given_id.encode(), self.client_id.encode())
        ok &= hmac.compare_digest(given_secret.encode(), self.client_secret.encode())
        return method if ok else None

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        if self.misbehave.token_redirect:
            return RedirectResponse(self.misbehave.token_redirect, status_code=307)
        fields = parse_qs((await request.body()).decode(errors="replace"))
        if any(len(values) != 1 for values in fields.values()):
            return _oauth_error("invalid_request", 400)
        form = {name: values[0] for name, values in fields.items()}
        method = self._client_method(request, form)
        if method is None:
            return _oauth_error("invalid_client", 401)
        self.client_auth_methods.append(method)
        if form.get("grant_type") != "authorization_code":
            return _oauth_error("unsupported_grant_type", 400)
        grant = self.codes.pop(form.get("code", ""), None)  # single use, even when refused
        if (
            grant is None
            or grant["expires"] < time.time()
            or grant["client_id"] != self.client_id
            or form.get("redirect_uri") != grant["redirect_uri"]
        ):
            return _oauth_error("invalid_grant", 400)
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode("ascii", errors="replace")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if not 43 <= len(verifier) <= 128 or not hmac.compare_digest(
            challenge.encode(), grant["challenge"].encode()
        ):
            return _oauth_error("invalid_grant", 400)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": TOKEN_SECONDS,
                "id_token": self.id_token(grant["nonce"]),
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def id_token(self, nonce: str | None) -> str:
        bad = self.misbehave
        now = int(time.time())
        claims: dict[str, Any] = {
            **self.user,
            "iss": bad.issuer or self.issuer,
            "aud": bad.audience or self.client_id,
            "iat": now - 3600 if bad.expired else now,
            "exp": now - 1800 if bad.expired else now + TOKEN_SECONDS,
        }
        if bad.nonce or nonce:
            claims["nonce"] = bad.nonce or nonce
        if bad.azp:
            claims["azp"] = bad.azp
        claims.update(bad.extra_claims)
        if bad.forge == "none":
            parts = [{"alg": "none", "kid": "k1", "typ": "JWT"}, claims]
            return ".".join(_b64(json.dumps(part).encode()) for part in parts) + "."
        if bad.forge == "hs256-public-key":
            shared = OctKey.import_key(json.dumps(self.key.as_dict(private=False)).encode())
            header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
            return jwt.encode(header, claims, shared, algorithms=["HS256"])
        kid = "not-published" if bad.forge == "unknown-kid" else "k1"
        key = self.other_key if bad.foreign_key else self.key
        return jwt.encode({"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _oauth_error(error: str, status: int) -> Response:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="token"'
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def use_provider(admin: Any, provider: OidcProvider, bind: dict[str, str] | None = None) -> None:
    """Through an organisation admin's API client (``admin``, signed in): make ``provider``
    the organisation's identity provider and bind its subjects to accounts (``bind``: account
    name to the provider's subject). The client secret is never sent back."""
    settings = {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
    }
    answer = admin.put("/api/org/sso", json=settings)
    assert answer.status_code == 200, answer.text
    assert "client_secret" not in answer.text
    for account, subject in (bind or {}).items():
        bound = admin.put(f"/api/users/{account}/sso", json={"subject": subject})
        assert bound.status_code == 200 and bound.json()["sso_bound"] is True, bound.text

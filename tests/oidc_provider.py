"""A small but real OpenID Connect provider for tests: discovery, keys, an authorization endpoint
that signs in one configured user without asking, and a token endpoint that checks the client,
the code (single use), the redirect URI and the PKCE verifier before issuing an RS256 ID token.

Knobs make it misbehave the ways a broken or hostile provider would.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.conftest import free_port


@dataclasses.dataclass
class Misbehaviour:
    issuer: str | None = None
    audience: str | None = None
    expired: bool = False
    nonce: str | None = None
    foreign_key: bool = False
    deny: bool = False
    discovery_issuer: str | None = None


class OidcProvider:
    def __init__(self, client_id: str = "tandem", client_secret: str = "provider-secret") -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris: set[str] = set()
        self.user: dict[str, Any] = {"sub": "u-1", "preferred_username": "alice"}
        self.misbehave = Misbehaviour()
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests = 0
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

    def start(self) -> OidcProvider:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("provider did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.misbehave.discovery_issuer or self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != self.client_id or q.get("redirect_uri") not in self.redirect_uris:
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if "openid" not in q.get("scope", "").split():
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        back = {"state": q.get("state", "")}
        if self.misbehave.deny:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "redirect_uri": q["redirect_uri"],
                "challenge": q.get("code_challenge", ""),
                "nonce": q.get("nonce"),
            }
            back["code"] = code
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode(back)}", status_code=302)

    def _client_ok(self, request: Request, form: Any) -> bool:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            pair = base64.b64decode(header[6:]).decode()
            return pair == f"{self.client_id}:{self.client_secret}"
        return (form.get("client_id"), form.get("client_secret")) == (
            self.client_id,
            self.client_secret,
        )

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if not self._client_ok(request, form):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.codes.pop(str(form.get("code", "")), None)  # single use
        if grant is None or form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if challenge != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {
            **self.user,
            "iss": self.misbehave.issuer or self.issuer,
            "aud": self.misbehave.audience or self.client_id,
            "iat": now - 3600 if self.misbehave.expired else now,
            "exp": now - 1800 if self.misbehave.expired else now + 300,
            "nonce": self.misbehave.nonce or grant["nonce"],
        }
        key = self.other_key if self.misbehave.foreign_key else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }
        )

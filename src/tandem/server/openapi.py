"""The OpenAPI description of the HTTP API, served at /api/openapi.json.

tests/server/test_openapi.py keeps it true: every /api route and method is described and nothing
else, and the status codes the server really returns are the ones listed here.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tandem import __version__

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_AGENT = {"$ref": "#/components/schemas/Agent"}


def _json(schema: Mapping[str, object], description: str) -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, object]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _PROBLEM}},
    }


SPEC: dict[str, object] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Tandem",
        "version": __version__,
        "description": "Agent sign-in for the console. Co-browsing itself runs over the "
        "WebSockets /ws/customer and /ws/agent (docs/protocol.md), end-to-end encrypted. "
        "A server with a public origin (--public-origin) answers a request addressed to any "
        "other host 421 Misdirected Request.",
    },
    "paths": {
        "/api/login": {
            "post": {
                "summary": "Sign in; sets the sign-in cookie (HttpOnly, SameSite=Strict): "
                "tandem_agent, or __Host-tandem_agent over TLS.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["username", "password"],
                                "additionalProperties": False,
                                "properties": {
                                    "username": {"type": "string", "maxLength": 64},
                                    "password": {"type": "string", "maxLength": 256},
                                    "code": {
                                        "type": ["string", "null"],
                                        "maxLength": 32,
                                        "description": "Authenticator code or recovery code",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_AGENT, "Signed in"),
                    "400": _problem("Malformed body"),
                    "401": _problem(
                        "Wrong username, password or authentication code; or a temporary "
                        "password past temporary_password_seconds (ask an admin for a new one)"
                    ),
                    "403": _problem(
                        "Cross-site request refused; or a temporary password typed in a "
                        "browser signed in as the admin who chose it"
                    ),
                    "413": _problem("Body over 4096 bytes"),
                    "415": _problem("Not application/json"),
                    "429": _problem("Too many failed sign-ins (Retry-After says how long)"),
                    "503": _problem(
                        "Too many sign-ins under way, from this address or in all "
                        "(Retry-After says when to try again)"
                    ),
                },
            }
        },
        "/api/logout": {
            "post": {
                "summary": "Sign out; revokes the sign-in and sends Clear-Site-Data.",
                "responses": {
                    "204": {"description": "Signed out"},
                    "403": _problem("Cross-site request refused"),
                },
            }
        },
        "/api/logout-everywhere": {
            "post": {
                "summary": "End every sign-in of this agent, on every device.",
                "responses": {
                    "204": {"description": "Signed out everywhere"},
                    "401": _problem("Not signed in"),
                    "403": _problem("Cross-site request refused"),
                },
            }
        },
        "/api/me": {
            "get": {
                "summary": "The signed-in agent.",
                "responses": {
                    "200": _json(_AGENT, "Signed in"),
                    "401": _problem("Not signed in"),
                },
            }
        },
        "/api/sso/start": {
            "get": {
                "summary": "Sign in through your organisation's OpenID Connect provider.",
                "parameters": [
                    {"name": "org", "in": "query", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "303": {
                        "description": "To the provider; or back to /console/?sso=unavailable "
                        "when the organisation has none"
                    }
                },
            }
        },
        "/api/sso/callback": {
            "get": {
                "summary": "Where the provider sends the browser back (code flow with PKCE).",
                "responses": {
                    "303": {
                        "description": "To /console/ signed in, or to /console/?sso=failed "
                        "(the reason is in the audit trail)"
                    }
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This description.",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
            }
        },
    },
    "components": {
        "schemas": {
            "Agent": {
                "type": "object",
                "required": [
                    "username",
                    "display_name",
                    "role",
                    "org",
                    "teams",
                    "needs_second_factor",
                    "must_change_password",
                ],
                "properties": {
                    "username": {"type": "string"},
                    "display_name": {"type": "string"},
                    "role": {"enum": ["agent", "supervisor", "auditor", "admin"]},
                    "org": {"type": "string"},
                    "teams": {"type": "array", "items": {"type": "string"}},
                    "needs_second_factor": {
                        "type": "boolean",
                        "description": "True until two-step sign-in is set up (POST "
                        "/api/mfa/setup); until then only self-service routes answer.",
                    },
                    "must_change_password": {
                        "type": "boolean",
                        "description": "True after an admin's password reset, until a new "
                        "password is chosen (POST /api/me/password); until then only "
                        "self-service routes answer.",
                    },
                },
            },
            "Problem": {
                "type": "object",
                "required": ["title", "status", "detail"],
                "properties": {
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                },
            },
        }
    },
}


def describe(paths: Mapping[str, object], schemas: Mapping[str, object]) -> dict[str, object]:
    """The whole description: :data:`SPEC` plus the signed-in API's ``paths`` and ``schemas``
    (``tandem.server.operations.openapi_paths()`` of the operations the app joins, so no route
    module imports another)."""
    spec = copy.deepcopy(SPEC)
    spec["paths"].update(paths)  # type: ignore[attr-defined]
    spec["components"]["schemas"].update(schemas)  # type: ignore[index]
    return spec


def endpoint(spec: Mapping[str, object]) -> Callable[[Request], Awaitable[Response]]:
    """The route serving ``spec`` at /api/openapi.json."""

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    return openapi

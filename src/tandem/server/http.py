"""What every HTTP and WebSocket route shares: the app's services, problem JSON, a bounded JSON
body, the signed-in agent and its cookie. Route modules import this, never each other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from tandem import auth

if TYPE_CHECKING:
    from tandem.server.services import Services

MAX_BODY_BYTES = 4096


def services_of(connection: HTTPConnection) -> Services:
    """The services the app was started with (:func:`tandem.server.services.running`)."""
    services: Services = connection.app.state.services
    return services


def problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


async def json_body(request: Request) -> bytes | JSONResponse:
    """The request body, or a problem response for a non-JSON or oversized request.

    Requiring ``application/json`` also stops cross-site form posts (they cannot send that type
    without a CORS preflight, which this server never grants).
    """
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return problem(415, "Unsupported media type", "Send JSON (Content-Type: application/json).")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return problem(413, "Request too large", f"At most {MAX_BODY_BYTES} bytes.")
    return body


async def current_agent(request: Request) -> auth.Agent | None:
    """The signed-in agent of this request (absolute and idle expiry applied)."""
    services = services_of(request)
    return await auth.agent_for_token(
        services.storage,
        request.cookies.get(auth.COOKIE_NAME),
        services.clock(),
        services.settings.login_idle_seconds,
    )


def set_sign_in_cookie(response: Response, request: Request, token: str, ttl: float) -> None:
    """The agent's sign-in cookie (password or identity provider sign-in alike)."""
    response.set_cookie(auth.COOKIE_NAME, token, max_age=int(ttl), **cookie_flags(request))


def cookie_flags(request: Request) -> dict[str, Any]:
    """The sign-in cookie's flags, the same when it is set and when it is cleared."""
    return {
        "path": "/",
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
    }

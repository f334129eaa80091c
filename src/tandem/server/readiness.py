"""Operators' endpoints: ``/readyz`` (the database and Redis answer) and ``/metrics``
(Prometheus, behind a bearer token or on a port of its own). Neither says anything about
sessions to whoever asks: ``/readyz`` names only the failing dependency, ``/metrics`` is off
unless a token or a metrics port is set."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tandem import crypto, metrics
from tandem.server.http import problem
from tandem.server.unavailable import storage_down


async def ready(request: Request) -> Response:
    """200 ``{"status": "ready"}`` when the database answers and the fan-out (Redis, if any)
    is connected; else 503 naming what is not."""
    services = request.app.state.services
    failing = []
    try:
        await asyncio.wait_for(services.storage.ping(), services.settings.readiness_timeout_seconds)
    except Exception as exc:
        if not (storage_down(exc) or isinstance(exc, OSError)):
            raise
        failing.append("database")
    if not getattr(services.fanout, "connected", True):
        failing.append("redis")
    if failing:
        response = JSONResponse({"status": "unavailable", "failing": failing}, status_code=503)
        response.headers["retry-after"] = "5"
        return response
    return JSONResponse({"status": "ready"})


async def metrics_page(request: Request) -> Response:
    """The Prometheus exposition, for a request bearing ``--metrics-token``; 404 when metrics
    are off here (no token set, or served on ``--metrics-port``)."""
    settings = request.app.state.services.settings
    token = settings.metrics_token
    if not token:
        return problem(404, "Not found", "Nothing here.")
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not crypto.secrets_equal(offered.strip(), token):
        response = problem(401, "Unauthorized", "This needs the metrics bearer token.")
        response.headers["www-authenticate"] = 'Bearer realm="metrics"'
        return response
    body = metrics.exposition(request.app.state.live_metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

"""The OpenAPI description stays true to the running server."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.routing import Route

from tandem.config import Settings
from tandem.server.app import OPENAPI, create_app
from tests.conftest import AGENT_PASSWORD, RunningServer


def described(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}


def test_every_api_route_is_described_and_nothing_else(tmp_path: Any) -> None:
    app = create_app(Settings.load(environ={}, data_dir=tmp_path))
    routes = {
        (route.path, method)
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/api")
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert routes == described(OPENAPI)


def test_served_description_matches_real_answers(server: RunningServer) -> None:
    spec = httpx.get(f"{server.base}/api/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    login = spec["paths"]["/api/login"]["post"]["responses"]
    me = spec["paths"]["/api/me"]["get"]["responses"]
    answers = {
        httpx.post(
            f"{server.base}/api/login", json={"username": "alice", "password": AGENT_PASSWORD}
        ).status_code,
        httpx.post(
            f"{server.base}/api/login", json={"username": "alice", "password": "nope-nope-nope"}
        ).status_code,
        httpx.post(
            f"{server.base}/api/login", content=b"{}", headers={"content-type": "application/json"}
        ).status_code,
        httpx.post(f"{server.base}/api/login", data={"a": "b"}).status_code,
        httpx.post(
            f"{server.base}/api/login",
            content=b"x" * 5000,
            headers={"content-type": "application/json"},
        ).status_code,
    }
    assert {str(code) for code in answers} <= set(login)  # every real answer is documented
    assert str(httpx.get(f"{server.base}/api/me").status_code) in me
    problem = httpx.get(f"{server.base}/api/me").json()
    assert set(spec["components"]["schemas"]["Problem"]["required"]) <= set(problem)

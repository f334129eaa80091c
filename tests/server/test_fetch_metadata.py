"""API routes refuse what only a hostile page would make the console's browser send (issue 14,
item 7): the customer's page, replayed in the agent's mirror, loading ``/api/me`` as an image or
a style sheet with the agent's cookie."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunningServer
from tests.server.helpers import login_cookie


def _signed_in(server: RunningServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.base, cookies={"tandem_agent": login_cookie(server, "alice")}
    )


@pytest.mark.parametrize("dest", ["image", "style", "font", "script", "iframe", "video", "object"])
def test_an_api_route_loaded_as_a_subresource_is_refused(server: RunningServer, dest: str) -> None:
    with _signed_in(server) as client:
        response = client.get(
            "/api/me", headers={"sec-fetch-dest": dest, "sec-fetch-site": "same-origin"}
        )
    assert response.status_code == 403
    assert "alice" not in response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_cross_site_fetch_of_an_api_route_is_refused(server: RunningServer) -> None:
    with _signed_in(server) as client:
        response = client.get(
            "/api/me",
            headers={
                "sec-fetch-dest": "empty",
                "sec-fetch-site": "cross-site",
                "origin": "http://evil.example",
            },
        )
    assert response.status_code == 403


def test_the_console_fetch_and_navigations_and_plain_clients_pass(server: RunningServer) -> None:
    with _signed_in(server) as client:
        console = client.get(
            "/api/me", headers={"sec-fetch-dest": "empty", "sec-fetch-site": "same-origin"}
        )
        assert console.status_code == 200 and "alice" in console.text
        navigation = client.get(
            "/api/me", headers={"sec-fetch-dest": "document", "sec-fetch-site": "none"}
        )
        assert navigation.status_code == 200
        assert client.get("/api/me").status_code == 200  # no Fetch Metadata: the CLI, curl


def test_static_files_are_not_affected(server: RunningServer) -> None:
    response = httpx.get(f"{server.base}/console/", headers={"sec-fetch-dest": "iframe"})
    assert response.status_code == 200

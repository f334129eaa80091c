"""Every HTTP route the server describes, fuzzed by schemathesis against a real server.

The description served at ``/api/openapi.json`` is loaded from the running server; for each
operation schemathesis generates requests (valid ones and ones that break the schema: wrong
types, out-of-range numbers, missing fields, odd strings) and sends them with the sign-in of a
role that may call it, so the handlers run and not only the authorisation check. No answer may
be a server error, and every answer must be one the description lists, with its content type and
body schema. Bounded: a few examples per operation, so the whole run takes seconds.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

import hypothesis
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tandem.access import allowed
from tandem.server import app as server_app
from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.server.helpers import login_cookie

# schemathesis (and requests) are imported by the tests that use them, not when the module is
# collected: every pytest-xdist worker collects every module, and they cost about half a second
# of CPU to import.
if TYPE_CHECKING:
    import requests
    import schemathesis
    from schemathesis import GenerationMode

EXAMPLES = 3
"""Requests per operation and generation mode (about 200 in all)."""

USER_OF_ROLE = {"admin": "ada", "auditor": "aud", "supervisor": "sam", "agent": "alice"}


@functools.cache
def session() -> requests.Session:
    """One connection for every request (schemathesis would open one per request)."""
    import requests

    return requests.Session()


def checks() -> list[Any]:
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]


def user_for(method: str, path: str) -> str:
    """A user whose role may call the operation (the admin for public routes)."""
    operation = server_app.operation_for(method, path)
    if operation is None:
        return "ada"
    return next(
        user
        for role, user in USER_OF_ROLE.items()
        if allowed(role, operation.action)  # type: ignore[arg-type]
    )


def fuzz(
    server: RunningServer,
    cookies: dict[str, str],
    operation: Any,
    mode: GenerationMode,
    failures: list[str],
) -> int:
    from schemathesis import GenerationMode

    calls = 0
    cookie = cookies[user_for(operation.method.upper(), operation.path)]
    headers = {"origin": server.origin}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        nonlocal calls
        calls += 1
        try:
            case.call_and_validate(
                session=session(),
                base_url=server.base,
                headers=headers,
                cookies={"tandem_agent": cookie},
                checks=checks(),
                timeout=10,
            )
        except (Exception, BaseExceptionGroup) as exc:  # every failure is reported below
            failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # nothing to break: no parameters, no body
    return calls


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_no_route_answers_a_server_error_or_outside_its_description(
    server_factory: ServerFactory,
) -> None:
    import schemathesis
    from schemathesis import GenerationMode

    server = server_factory(seed=two_organisations)
    schema = schemathesis.openapi.from_url(f"{server.base}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    # Signing out (everywhere) ends the sign-in the next operations would use: last.
    operations.sort(key=lambda op: op.path.startswith("/api/logout"))
    # Signed in once: wrong current passwords (POST /api/me/password) throttle the account.
    cookies = {user: login_cookie(server, user) for user in USER_OF_ROLE.values()}
    started = time.monotonic()
    failures: list[str] = []
    calls = 0
    for operation in operations:
        # Requests that break the schema: only where there is a body or a query to break (a
        # path parameter is any string; wrong ones are covered by the positive examples).
        breakable = operation.body or len(operation.query)
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if breakable else [])
        for mode in modes:
            calls += fuzz(server, cookies, operation, mode, failures)
    elapsed = time.monotonic() - started
    assert len(operations) > 40
    assert calls >= len(operations)
    assert not failures, "\n\n".join(failures)
    print(f"{len(operations)} operations, {calls} requests in {elapsed:.1f} s")


def test_the_run_catches_a_server_error_and_an_answer_outside_the_description(
    server_factory: ServerFactory,
) -> None:
    """The harness itself: a route that fails (500) and one whose answer has a field the
    description does not allow are both reported."""
    import schemathesis
    from schemathesis import GenerationMode

    def broken(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "")
            if scope["type"] == "http" and path == "/api/teams":
                await JSONResponse({"detail": "boom"}, status_code=500)(scope, receive, send)
            elif scope["type"] == "http" and path == "/api/org":
                await JSONResponse({"unexpected": True})(scope, receive, send)
            else:
                await app(scope, receive, send)

        return wrapped

    server = server_factory(seed=two_organisations, wrap=broken)
    schema = schemathesis.openapi.from_url(f"{server.base}/api/openapi.json")
    cookies = {"ada": login_cookie(server, "ada")}
    for path, expected in (
        ("/api/teams", "Server error"),
        ("/api/org", "Response violates schema"),
    ):
        operation = schema[path]["GET"]
        failures: list[str] = []
        fuzz(server, cookies, operation, GenerationMode.POSITIVE, failures)
        assert failures and expected in failures[0], failures

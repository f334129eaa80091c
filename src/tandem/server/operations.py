"""The table-driven signed-in API: an :class:`Operation` is one route (method, path, the action
it needs, body type, handler, answer type); :func:`endpoint` is the one wrapper that signs the
caller in, authorises the action *before* reading the body, decodes and validates the body and
turns errors into problem JSON. Route modules (admin.py, compliance_api.py) each list their
operations with this; the app joins the lists (:data:`tandem.server.app.OPERATIONS`), so no route
module imports another."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tandem import auth
from tandem.access import Action, Grant, Principal, authorize
from tandem.config import Settings
from tandem.exceptions import (
    AuthenticationError,
    BusyError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    StorageError,
    TandemError,
    WeakPasswordError,
)
from tandem.protocol.codec import carries_nul, json_carries_nul
from tandem.server.http import (
    current_agent,
    json_body,
    not_signed_in,
    problem,
    services_of,
    sign_in_token,
)

if TYPE_CHECKING:
    from tandem.hub import DownloadGuard
    from tandem.server.services import Services


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    services: Services
    principal: Principal
    grant: Grant
    """What the wrapper's authorisation of the operation's action returned."""
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    request: Request | None = None


Handler = Callable[[Call], Awaitable[object]]


def download_guard(call: Call, what: str) -> DownloadGuard:
    """What a download of ``call`` (``what``: a recording's file, a subject's export) asks
    before each chunk: whether the caller's sign-in may still have it (the operation's action)."""
    token = sign_in_token(call.request) if call.request is not None else None
    login = auth.login_digest(token) if token else ""
    action = call.grant.action
    assert action is not None  # a signed-in caller's grant names the action authorised
    return call.services.hub.download_guard(login, call.principal, action, what)


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    action: Action
    summary: str
    handler: Handler
    body: type[msgspec.Struct] | None = None
    status: int = 200
    """Status of success; 204 sends no body."""
    media_type: str = "application/json"
    """What a success returns (recordings are ``application/octet-stream``)."""
    returns: Any = None
    """The type of a JSON success's body (an :class:`Answer`, a list of them, or ``list[str]``)."""
    max_body: Callable[[Settings], int] | None = None
    """The body's size limit from the settings, where it is not ``max_request_body_bytes``."""
    query: tuple[tuple[str, dict[str, object]], ...] = ()
    """Query parameters the handler reads: name and JSON schema (all optional)."""
    throttled: bool = False
    """It may answer 429 with Retry-After (wrong passwords count towards a back-off)."""
    finds: bool = False
    """It may answer 404 for what its body names (path parameters document 404 anyway)."""
    busy: bool = False
    """It may answer 503 with Retry-After while too much of its costly work is under way
    (password hashes: ``password_hash_*``; recordings' files: ``max_recording_downloads``)."""
    answer_headers: tuple[tuple[str, tuple[str, ...], str], ...] = ()
    """Header fields a success carries (a 204's only way to say more): name, the values it may
    have, and what they mean. The handler returns the :class:`Response` that sets them."""


_STATUS = (
    (AuthenticationError, 400, "Wrong code"),
    (WeakPasswordError, 400, "Weak password"),
    (ConfigError, 400, "Invalid value"),
    (ForbiddenError, 403, "Forbidden"),
    (NotFoundError, 404, "Not found"),
    (ConflictError, 409, "Conflict"),
)


def _error_response(exc: TandemError) -> Response:
    if isinstance(exc, StorageError):  # the database did not answer: 503 (server.unavailable)
        raise exc
    if isinstance(exc, BusyError):  # a password hash, a recording's file: wait a moment
        response = problem(503, "Busy", str(exc))
        response.headers["retry-after"] = str(math.ceil(exc.retry_after))
        return response
    for kind, status, title in _STATUS:
        if isinstance(exc, kind):
            return problem(status, title, str(exc))
    return problem(400, "Bad request", str(exc))


NUL_REFUSED = "Text may not contain the NUL character (U+0000)."
"""SQLite stores it, PostgreSQL refuses it (as a database failure): refused here on both."""


RECORDING_REFUSALS = frozenset({"recording.play", "recording.export", "recording.erase"})
"""Actions whose refusal is recorded as ``recording_refused``, naming the recording (an attempt
to read or destroy one by a role that may not: an admin playing one, an auditor erasing one, an
agent fetching one). So is any ``404`` of a route naming a recording (reason ``recording not
found``). Every other refusal of a signed-in account is ``access_refused``, a ``404`` of a route
that names a thing in its path or body too (reason ``not found``: the name stays out)."""

NOT_FOUND = "not found"
"""The reason of a ``404``'s record outside recordings: the same whether the name is another
organisation's or nobody's (the asker's auditor learns nothing of other organisations from it),
and never the name itself (a customer's ``sub``, a name the account had no right to know)."""


def _names_a_thing(operation: Operation, request: Request) -> bool:
    """Whether a ``404`` of this call answered a name the caller gave (in the path or, for
    operations that find what their body names, the body): a probe to record, not an answer
    about the caller's own organisation or account."""
    return bool(request.path_params) or operation.finds


async def _record_refusal(
    services: Services, principal: Principal, operation: Operation, request: Request, exc: Exception
) -> None:
    """The audit record of a refused attempt by a signed-in account: who, the action it needs,
    the route's template (never the path with its ids, nor the query) and why. The answer is
    403 (404) whatever happens to it: one account's records are bounded (SessionHub.refused), and if
    storage fails the record is kept and written once it answers (SessionHub.record_done)."""
    # A recording that is not there (erased, expired, another organisation's, never made) is
    # named too: asking for ids leaves a trace in the asker's organisation. So does asking for
    # any other name that is not there (another organisation's user, site, team or customer
    # reads as one that exists nowhere), without the name.
    named_recording = "recording_id" in request.path_params
    recording = operation.action in RECORDING_REFUSALS or (
        isinstance(exc, NotFoundError) and named_recording
    )
    subject = str(request.path_params.get("recording_id", ""))[:200] if recording else ""
    not_found = isinstance(exc, NotFoundError) and not named_recording
    await services.hub.refused(
        "recording_refused" if recording else "access_refused",
        principal,
        subject=subject,
        needs=operation.action,
        method=operation.method,
        route=operation.path,
        reason=NOT_FOUND if not_found else str(exc)[:200],
    )


def endpoint(operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    decoder = msgspec.json.Decoder(operation.body) if operation.body else None

    async def handle(request: Request) -> Response:
        services = services_of(request)
        principal = await current_agent(request)
        if principal is None:
            return not_signed_in(request)
        try:
            grant = authorize(principal, operation.action)
            # Sessions and recordings: the policy acknowledged (and, live, practised) first.
            await services.hub.training.require(principal, operation.action)
        except ForbiddenError as exc:
            await _record_refusal(services, principal, operation, request, exc)
            return problem(403, "Forbidden", str(exc))
        if carries_nul([*request.path_params.values(), *request.query_params.values()]):
            return problem(400, "Bad request", NUL_REFUSED)
        body: Any = None
        if decoder is not None:
            settings = services.settings
            limit = (
                operation.max_body(settings)
                if operation.max_body
                else settings.max_request_body_bytes
            )
            raw = await json_body(request, limit)
            if isinstance(raw, Response):
                return raw
            try:
                body = decoder.decode(raw)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                return problem(400, "Bad request", str(exc))
            if json_carries_nul(raw):
                return problem(400, "Bad request", NUL_REFUSED)
        call = Call(
            services,
            principal,
            grant,
            dict(request.path_params),
            dict(request.query_params),
            body,
            request,
        )
        try:
            result = await operation.handler(call)
        except TandemError as exc:
            if isinstance(exc, ForbiddenError) or (
                isinstance(exc, NotFoundError) and _names_a_thing(operation, request)
            ):
                await _record_refusal(services, principal, operation, request, exc)
            return _error_response(exc)
        if operation.status == 204:
            if isinstance(result, Response) and result.status_code == 204:
                return result  # with its answer_headers
            return Response(status_code=204)
        if isinstance(result, Response):
            return result
        return JSONResponse(result, status_code=operation.status)

    handle.__name__ = operation.handler.__name__.lstrip("_")
    handle.tandem_action = operation.action  # type: ignore[attr-defined]
    return handle


def _not_allowed(handlers: dict[str, object]) -> Response:
    """``405`` for a method of no operation of the path, whoever asks, before anything else.
    HEAD is one: Starlette routes it here with every GET, and it failed with a 500 (no
    handler). It is not served as its GET either: a HEAD of a recording's content would build
    the file and audit a playback to send none of it."""
    allowed = ", ".join(handlers)
    response = problem(405, "Method not allowed", f"Use {allowed}.")
    response.headers["allow"] = allowed
    return response


def routes(table: Sequence[Operation]) -> list[Route]:
    """One Starlette route per path of ``table``, dispatching on method."""
    by_path: dict[str, dict[str, Operation]] = {}
    for operation in table:
        by_path.setdefault(operation.path, {})[operation.method] = operation
    found = []
    for path, operations in by_path.items():
        handlers = {method: endpoint(op) for method, op in operations.items()}

        async def dispatch(request: Request, handlers: Any = handlers) -> Response:
            handler = handlers.get(request.method)
            if handler is None:  # HEAD, which Starlette adds to every GET route
                return _not_allowed(handlers)
            response: Response = await handler(request)
            return response

        found.append(Route(path, dispatch, methods=list(operations)))
    return found


def operation_for(table: Sequence[Operation], method: str, path: str) -> Operation | None:
    for operation in table:
        if operation.method == method and operation.path == path:
            return operation
    return None


def openapi_paths(table: Sequence[Operation]) -> tuple[dict[str, object], dict[str, object]]:
    """OpenAPI path items and component schemas for the operations of ``table``."""
    bodies = [op.body for op in table if op.body is not None]
    answering = [op for op in table if op.returns is not None]
    schemas, components = msgspec.json.schema_components(
        [*bodies, *(op.returns for op in answering)], ref_template="#/components/schemas/{name}"
    )
    answer_schema = {
        (op.method, op.path): schema
        for op, schema in zip(answering, schemas[len(bodies) :], strict=True)
    }
    paths: dict[str, dict[str, object]] = {}
    problem_ref = {"$ref": "#/components/schemas/Problem"}

    def problem_response(text: str) -> dict[str, object]:
        return {
            "description": text,
            "content": {"application/problem+json": {"schema": problem_ref}},
        }

    for op in table:
        responses: dict[str, object] = {
            str(op.status): {"description": "Done"}
            if op.status == 204
            else {
                "description": "Done",
                "content": {op.media_type: {"schema": answer_schema.get((op.method, op.path), {})}},
            },
            "401": problem_response("Not signed in"),
            "403": problem_response("Your role or team does not allow it, or cross-site"),
        }
        if op.answer_headers:
            done = responses[str(op.status)]
            assert isinstance(done, dict)
            done["headers"] = {
                name: {"description": text, "schema": {"type": "string", "enum": list(values)}}
                for name, values, text in op.answer_headers
            }
        item: dict[str, object] = {
            "summary": op.summary,
            "x-tandem-action": op.action,
            "responses": responses,
        }
        if "{" in op.path or op.finds:
            responses["404"] = problem_response("Not found in your organisation")
        if "{" in op.path:
            item["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _path_names(op.path)
            ]
        responses["400"] = problem_response("Invalid body or value (the message names it)")
        if op.method != "GET":
            responses["409"] = problem_response("Conflicts with what is stored")
        if op.query:
            parameters = item.setdefault("parameters", [])
            assert isinstance(parameters, list)
            parameters.extend(
                {"name": name, "in": "query", "required": False, "schema": schema}
                for name, schema in op.query
            )
        if op.throttled:
            responses["429"] = problem_response("Too many attempts (Retry-After says how long)")
        if op.busy:
            responses["503"] = problem_response(
                "Too much of this work under way (Retry-After says when to try again)"
            )
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}
                    }
                },
            }
            responses["413"] = problem_response("Body over 4096 bytes")
            responses["415"] = problem_response("Not application/json")
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return dict(paths), json.loads(json.dumps(components))


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]

"""Structured logs (structlog): Tandem's own events, uvicorn's lines and the access log, as JSON
lines (``--log-format json``) or readable console lines.

What is never logged: secrets, join codes, resume and customer tokens, passwords, page content.
Events carry ids, names, reasons and counts only; :func:`_drop_secrets` removes any field whose
name says it holds a secret, and the access log's query strings are replaced (an OIDC callback's
``?code=`` and ``&state=`` would otherwise be written to disk).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from tandem.names import display_line

LogFormat = Literal["json", "console"]
SECRET_FIELDS = frozenset(
    {"code", "token", "password", "secret", "resume_token", "cookie", "authorization", "key"}
)
"""Field names whose values are dropped from every event, whoever logs them."""


def get_logger(name: str) -> Any:
    """A structlog logger writing through the standard library's ``logging`` (so that one
    configuration covers Tandem's, uvicorn's and the libraries' lines)."""
    return structlog.stdlib.get_logger(name)


def origin(exc: BaseException) -> str:
    """Where an exception was raised (``module.py:line``), for a log line without its message
    (a database error's message can hold a statement's parameters)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"


def redact_query(path: str) -> str:
    """A request path with its query (if any) replaced: queries carry OIDC codes and states."""
    base, mark, _ = path.partition("?")
    return f"{base}?[redacted]" if mark else base


def _drop_secrets(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name in [name for name in event if name.lower() in SECRET_FIELDS]:
        event[name] = "[redacted]"
    return event


_KEPT_AS_LINES = frozenset({"exception", "stack"})
"""Fields that are several lines by nature (a traceback): the renderer writes them as such."""


def _plain_fields(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Each text of an event as one line a terminal shows as it is (:func:`display_line`): the
    console renderer writes a value without spaces unquoted, so a sign-in's username (anyone's
    choice) wrote a right-to-left override into the operator's log line and turned the rest of
    it, the address among it, around. (JSON escapes what is not ASCII.)"""
    for name, value in event.items():
        if isinstance(value, str) and name not in _KEPT_AS_LINES:
            event[name] = display_line(value)
    return event


class _AccessQueryFilter(logging.Filter):
    """uvicorn's access lines are ``(client, method, path, http version, status)``: the path
    loses its query before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_query(args[2]), args[3], args[4])
        return True


ACCESS_FILTER = _AccessQueryFilter()


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _drop_secrets,
]


def _route_to_stdlib() -> None:
    """structlog events become standard ``logging`` records (formatted by :func:`configure`'s
    handler, or captured as they are by a test)."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


if not structlog.is_configured():
    _route_to_stdlib()


def configure(log_format: LogFormat = "console", level: str = "info") -> None:
    """Send every log line (Tandem's structlog events, uvicorn's and the libraries' standard
    ``logging`` records) to stderr in one format. Idempotent."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        # A traceback without its frames' local variables: rich's (the default, rich being
        # installed with typer) printed every one, a request's headers and cookies among them.
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # JSON: the traceback as text (it was the exception info's repr, "<traceback
                # object at 0x…>", the operator left with no line of where it failed).
                *([structlog.processors.format_exc_info] if log_format == "json" else []),
                *([] if log_format == "json" else [_plain_fields]),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl …" at every start
    redact_access_log()


def redact_access_log() -> None:
    """Strip queries from uvicorn's access lines (idempotent)."""
    access = logging.getLogger("uvicorn.access")
    if ACCESS_FILTER not in access.filters:
        access.addFilter(ACCESS_FILTER)

"""TandemServer overrides and reads private parts of uvicorn's Server (a second Ctrl-C ends
uvicorn's wait for the sockets, tests/server/test_interrupted_stop.py; the signals it raises
again once stopped). requirements/*.txt pin uvicorn; these fail loudly when an upgrade renamed
or reshaped what the stop relies on, rather than letting the hurry silently not hurry."""

from __future__ import annotations

import inspect
import logging

import pytest
import uvicorn

from tandem.server import websocket_protocol
from tandem.server.websocket_protocol import TandemServer, uvicorn_private_parts_missing


def test_uvicorn_has_the_private_parts_the_stop_relies_on() -> None:
    assert uvicorn_private_parts_missing() == [], uvicorn.__version__
    waiting = uvicorn.Server._wait_tasks_to_complete
    assert inspect.iscoroutinefunction(waiting)
    assert list(inspect.signature(waiting).parameters) == ["self"]
    assert list(inspect.signature(TandemServer._wait_tasks_to_complete).parameters) == ["self"]
    # uvicorn's stop waits through it, bounded by timeout_graceful_shutdown (a hurry's
    # TimeoutError is its own timeout's), and re-raises the signals it captured.
    shutdown = inspect.getsource(uvicorn.Server.shutdown)
    assert "self._wait_tasks_to_complete()" in shutdown
    assert "timeout_graceful_shutdown" in shutdown
    assert "TimeoutError" in shutdown
    assert "self._captured_signals" in inspect.getsource(uvicorn.Server.capture_signals)


def test_a_uvicorn_without_them_is_reported_at_the_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Were uvicorn to rename its wait, the override would never be called: said at the start."""
    monkeypatch.delattr(uvicorn.Server, "_wait_tasks_to_complete")
    missing = uvicorn_private_parts_missing()
    assert len(missing) == 1 and missing[0].startswith("_wait_tasks_to_complete"), missing
    with caplog.at_level(logging.ERROR, logger=websocket_protocol.log.name):
        TandemServer(uvicorn.Config(app=None, log_config=None), None, 5.0)  # type: ignore[arg-type]
    assert any("_wait_tasks_to_complete" in r.getMessage() for r in caplog.records), caplog.text

"""A server restart with SIGTERM hands live sessions over to the next process (issue 13): both
sides are told to reconnect (1012), the next `tandem serve` on the same data directory and port
takes the session up when a side resumes with its token, and frames flow again. Tokens are
stored as digests only; wrong, stolen or expired ones are refused; nobody back within the window
ends the session, audited. Real `tandem serve` processes on loopback: SQLite, restarted on the
same data directory and port; and a PostgreSQL cluster, resumed on another process."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from tandem.directory import Directory
from tests.conftest import DataTemplates, free_port, two_organisations
from tests.server import test_cluster_faults as faults
from tests.server.helpers import (
    closed_with,
    login_cookie,
    open_agent,
    open_customer,
    recv_json,
    resume_on,
    send,
    sharing_with_tokens,
    start_session,
)
from tests.server.test_cluster_faults import Cluster, closed, exchange
from tests.server.test_crash_recovery import ServeProcess, rows, serve_processes, wait_for
from tests.server.test_graceful_stop import audit_records
from tests.server.test_recordings import recordings_of, with_recording_key

__all__ = ["serve_processes"]  # the fixture, shared with tests/server/test_crash_recovery.py
# The cluster's fixtures (servers on a fresh PostgreSQL schema and a Redis of the test's own),
# shared with tests/server/test_cluster_faults.py.
private_redis = faults.private_redis
cluster = faults.cluster

RECONNECT = {
    "v": 1,
    "type": "restarting",
    "message": "The help server is restarting. Reconnecting to it; the session goes on.",
    "reason": "reconnect",
}
BACK = {"v": 1, "type": "peer", "connected": True}
METRICS_TOKEN = "restart-metrics-token"


def handed_over(server: ServeProcess, outcome: str) -> float:
    """``tandem_sessions_handed_over_total`` of ``outcome`` in ``server``'s metrics."""
    answer = httpx.get(
        f"{server.base}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert answer.status_code == 200, answer.text
    found = re.search(
        rf'^tandem_sessions_handed_over_total{{outcome="{outcome}"}} (\S+)$', answer.text, re.M
    )
    return float(found.group(1)) if found else 0.0


@dataclasses.dataclass
class Restarting:
    """A `tandem serve` with a customer sharing with alice, before its restart (the next one
    runs on the same data directory and port, :meth:`next_process`)."""

    data_dir: Path
    port: int
    server: ServeProcess
    start: Callable[..., ServeProcess]
    cookie: str
    customer: ClientConnection
    agent: ClientConnection
    created: dict[str, Any]
    """The customer's ``created`` (its resume token)."""
    joined: dict[str, Any]
    """The agent's ``joined`` (its resume token)."""

    def next_process(self, **env: str) -> ServeProcess:
        return self.start(self.data_dir, self.port, **env)

    @property
    def database(self) -> Path:
        return self.data_dir / "tandem.sqlite3"


async def restarting(
    tmp_path: Path,
    data_templates: DataTemplates,
    serve_processes: Callable[..., ServeProcess],
    seed: Callable[[Directory], Awaitable[None]] | None = None,
    **env: str,
) -> Restarting:
    data_dir, port = tmp_path / "data", free_port()
    data_templates.copy_to(data_dir, seed)
    server = serve_processes(data_dir, port, **env)
    cookie = login_cookie(server)  # type: ignore[arg-type]
    sharing = await sharing_with_tokens(server, cookie)  # type: ignore[arg-type]
    return Restarting(data_dir, port, server, serve_processes, cookie, *sharing)


async def stopped_with_sigterm(server: ServeProcess, *sockets: ClientConnection) -> None:
    """SIGTERM: every socket is told to reconnect and closed 1012; the process exits 0."""
    server.process.send_signal(signal.SIGTERM)
    for ws in sockets:
        messages, code, reason = await closed(ws, timeout=15)
        assert messages[-1:] == [RECONNECT], messages
        assert not [m for m in messages if m["type"] == "ended"], messages
        assert (code, reason) == (1012, "server restarting: reconnect")
    assert await asyncio.to_thread(server.process.wait, 20) == 0


async def rejoin(server: ServeProcess, cookie: str, joined: dict[str, Any]) -> ClientConnection:
    agent = await open_agent(server, cookie)  # type: ignore[arg-type]
    await send(
        agent, type="rejoin", session_id=joined["session_id"], resume_token=joined["resume_token"]
    )
    return agent


def actions_of(data_dir: Path, session_id: str) -> list[tuple[str, str]]:
    return [
        (r["action"], str(r["details"].get("reason", "")))
        for r in audit_records(data_dir)
        if session_id in (r["subject"], r["details"].get("session"))
    ]


async def test_both_sides_reconnect_to_the_next_process_and_frames_flow_again(
    tmp_path: Path,
    data_templates: DataTemplates,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    before = await restarting(tmp_path, data_templates, serve_processes)
    session_id = before.created["session_id"]
    await stopped_with_sigterm(before.server, before.customer, before.agent)
    query = "SELECT state, node FROM sessions WHERE session_id = ?"
    # Handed over: held by no process, its consent as it was.
    assert rows(before.database, query, session_id) == [("sharing", "")]

    second = before.next_process(TANDEM_METRICS_TOKEN=METRICS_TOKEN)
    customer, resumed = await resume_on(second, before.created)  # type: ignore[arg-type]
    assert resumed["type"] == "resumed" and resumed["state"] == "sharing", resumed
    assert resumed["agent"] == "Alice" and resumed["recording"] is False
    assert handed_over(second, "restored") == 1
    agent = await rejoin(second, before.cookie, before.joined)
    assert await recv_json(agent) == {
        "v": 1, "type": "joined", "session_id": session_id, "resume_token": "",
        "resume_seconds": 0, "resumed": True,
    }  # fmt: skip
    assert await recv_json(customer) == BACK
    await exchange(customer, agent, b"after the restart")

    await send(agent, type="leave")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}
    second.stop()
    trail = actions_of(before.data_dir, session_id)
    assert ("session_suspended", "server_restart") in trail
    assert ("session_restored", "server_restart") in trail
    assert trail[-1] == ("session_ended", "agent_left"), trail
    assert not [a for a in trail if a[1] in ("server_lost", "server_shutdown", "agent_lost")]


async def test_the_agent_may_come_back_first_and_a_waiting_session_keeps_its_code(
    tmp_path: Path,
    data_templates: DataTemplates,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    before = await restarting(tmp_path, data_templates, serve_processes)
    waiting, waiting_created = await start_session(before.server)  # type: ignore[arg-type]
    await stopped_with_sigterm(before.server, before.customer, before.agent, waiting)

    second = before.next_process()
    agent = await rejoin(second, before.cookie, before.joined)  # first: the customer is away
    assert (await recv_json(agent))["resumed"] is True
    customer, resumed = await resume_on(second, before.created)  # type: ignore[arg-type]
    assert resumed["state"] == "sharing"
    assert await recv_json(agent) == BACK
    await exchange(customer, agent, b"agent came first")

    waiting, resumed = await resume_on(second, waiting_created)  # type: ignore[arg-type]
    assert resumed["state"] == "waiting" and resumed["code"] is None  # the page keeps its code
    other = await open_agent(second, login_cookie(second))  # type: ignore[arg-type]
    await send(other, type="join", code=waiting_created["code"])
    assert (await recv_json(other))["type"] == "joined"
    assert (await recv_json(waiting))["type"] == "agent_joined"


async def test_a_wrong_stolen_or_foreign_token_is_refused_after_the_restart(
    tmp_path: Path,
    data_templates: DataTemplates,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """Only digests are stored: the database file holds neither token, and its digests open
    nothing. Another sign-in of the same agent, or another agent, with the agent's right token
    is refused too; the real sides still resume afterwards."""
    before = await restarting(tmp_path, data_templates, serve_processes, two_organisations)
    created, joined, cookie = before.created, before.joined, before.cookie
    session_id = created["session_id"]
    await stopped_with_sigterm(before.server, before.customer, before.agent)

    stored = b"".join(path.read_bytes() for path in before.data_dir.glob("tandem.sqlite3*"))
    for token in (created["resume_token"], joined["resume_token"]):
        assert token.encode() not in stored
    [(customer_digest, agent_digest)] = rows(
        before.database,
        "SELECT resume_digest, agent_resume_digest FROM suspended_sessions WHERE session_id = ?",
        session_id,
    )
    # A well-formed token made of a stolen digest (its hex, without the "k1:" mark).
    customer_digest, agent_digest = (d.removeprefix("k1:") for d in (customer_digest, agent_digest))
    second = before.next_process()
    for token in ("x" * len(created["resume_token"]), customer_digest, joined["resume_token"]):
        thief = await open_customer(second)  # type: ignore[arg-type]
        await send(thief, type="resume", session_id=session_id, resume_token=token)
        assert await closed_with(thief) == (4404, "session not found")
    for thief_cookie, token in (
        (cookie, agent_digest),  # the stolen row's digest
        (login_cookie(second), joined["resume_token"]),  # type: ignore[arg-type]  # alice again
        (login_cookie(second, "bob"), joined["resume_token"]),  # type: ignore[arg-type]
    ):
        thief = await rejoin(second, thief_cookie, {**joined, "resume_token": token})
        assert await closed_with(thief) == (4404, "session not found")
    assert rows(before.database, "SELECT count(*) FROM suspended_sessions") == [(1,)]  # not taken

    agent = await rejoin(second, cookie, joined)
    assert (await recv_json(agent))["resumed"] is True
    customer, resumed = await resume_on(second, created)  # type: ignore[arg-type]
    assert resumed["state"] == "sharing"
    assert await recv_json(agent) == BACK
    await exchange(customer, agent, b"the real ones")


async def test_nobody_back_within_the_window_ends_the_session_audited(
    tmp_path: Path,
    data_templates: DataTemplates,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """Crash recovery ends the handed-over session once its window has passed
    (`server_shutdown`); a resume after that is refused, and supervisors no longer see it."""
    window = {"TANDEM_RESUME_GRACE_SECONDS": "3", "TANDEM_AGENT_RESUME_SECONDS": "3"}
    fast = {**window, "TANDEM_HEARTBEAT_SECONDS": "0.5", "TANDEM_PROCESS_LOST_SECONDS": "5"}
    before = await restarting(tmp_path, data_templates, serve_processes, two_organisations, **fast)
    session_id = before.created["session_id"]
    await stopped_with_sigterm(before.server, before.customer, before.agent)

    second = before.next_process(**fast, TANDEM_METRICS_TOKEN=METRICS_TOKEN)
    ended = "SELECT end_reason FROM sessions WHERE session_id = ?"
    await wait_for(lambda: rows(before.database, ended, session_id) == [("server_shutdown",)])
    assert handed_over(second, "expired") == 1
    assert rows(before.database, "SELECT count(*) FROM suspended_sessions") == [(0,)]
    late = await open_customer(second)  # type: ignore[arg-type]
    await send(
        late, type="resume", session_id=session_id, resume_token=before.created["resume_token"]
    )
    assert await closed_with(late) == (4404, "session not found")
    supervisor = await open_agent(second, login_cookie(second, "sam"))  # type: ignore[arg-type]
    await send(supervisor, type="watch", session_id=session_id)
    assert (await closed_with(supervisor))[0] == 4404

    second.stop()
    trail = actions_of(before.data_dir, session_id)
    assert trail[-2:] == [
        ("session_suspended", "server_restart"),
        ("session_ended", "server_shutdown"),
    ], trail


async def test_a_running_recording_ends_flushed_at_the_restart_and_does_not_go_on(
    tmp_path: Path,
    data_templates: DataTemplates,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """The recording's frames up to the stop are stored and it ends `server_restart`; after the
    resume nothing is recorded unless the agent asks and the customer allows again."""
    before = await restarting(tmp_path, data_templates, serve_processes, with_recording_key)
    customer, agent = before.customer, before.agent
    await send(agent, type="record")
    assert (await recv_json(customer))["type"] == "record_request"
    await send(customer, type="record_consent", granted=True)
    assert (await recv_json(agent))["on"] is True
    assert (await recv_json(customer))["on"] is True
    await exchange(customer, agent, b"recorded")
    await stopped_with_sigterm(before.server, customer, agent)

    second = before.next_process()
    [stopped] = recordings_of(second)  # type: ignore[arg-type]
    assert stopped["end_reason"] == "server_restart" and stopped["frames"] == 1, stopped
    customer, resumed = await resume_on(second, before.created)  # type: ignore[arg-type]
    assert resumed["recording"] is False
    agent = await rejoin(second, before.cookie, before.joined)
    assert (await recv_json(agent))["resumed"] is True
    assert await recv_json(customer) == BACK
    await exchange(customer, agent, b"not recorded")
    assert recordings_of(second)[0]["frames"] == 1  # type: ignore[arg-type]
    stored = rows(before.database, "SELECT data FROM recording_frames")
    assert [bytes(data) for (data,) in stored] == [b"\x01recorded"]


async def test_a_session_of_a_stopped_cluster_process_resumes_on_another(
    cluster: Cluster,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """PostgreSQL and Redis: the process holding the session stops (SIGTERM); the customer
    resumes on a survivor, which takes the session up, and the agent rejoins there too."""
    survivor = cluster.start()
    stopping = cluster.process(serve_processes)
    cookie = login_cookie(survivor)
    customer, agent, created, joined = await sharing_with_tokens(stopping, cookie)  # type: ignore[arg-type]
    await stopped_with_sigterm(stopping, customer, agent)

    customer, resumed = await resume_on(survivor, created)
    assert resumed["type"] == "resumed" and resumed["state"] == "sharing", resumed
    agent = await rejoin(survivor, cookie, joined)  # type: ignore[arg-type]
    assert (await recv_json(agent))["resumed"] is True
    assert await recv_json(customer) == BACK
    await exchange(customer, agent, b"on the survivor")
    await send(agent, type="leave")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}

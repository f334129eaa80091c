"""Every refused attempt of a signed-in account is evidence (HIPAA §164.312(b), PCI DSS
10.2.1.4): an agent calling an admin's or an auditor's endpoint, an admin creating an auditor
(refused inside the handler), an auditor opening the agent socket. Each is an ``access_refused``
record naming the account, the action it needed and the route's template (never the ids or the
query of the path it called), bounded per account (``refusal_audit_burst`` in full per
``refusal_audit_window_seconds``, then one ``access_refused_summary``), kept while the database
fails, and not removable from the trail without ``tandem audit verify`` failing. Before, only a
refused play, export or erasure of a recording (``recording_refused``) left a trace."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, two_organisations
from tests.server.helpers import closed_with, open_agent
from tests.server.test_audit_after_faults import audit_refuses, audited, eventually, pg_server
from tests.server.test_frozen_database import wait_for
from tests.server.test_organisations import api
from tests.test_audit import (
    INSERT_AUDIT_ROW,
    audit_row,
    rewrite_without_the_key,
    run_verify,
    tamper,
    trail,
)


def trail_of(server: RunningServer, action: str) -> list[dict[str, Any]]:
    """The organisation's records of ``action``, oldest first, as the auditor reads them."""
    with api(server, "aud") as aud:
        records = aud.get("/api/audit").json()
    return [r for r in records if r["action"] == action]


def refusals(server: RunningServer) -> list[tuple[str, str, str, str]]:
    return [
        (r["actor"], r["details"]["needs"], r["details"]["method"], r["details"]["route"])
        for r in trail_of(server, "access_refused")
    ]


async def test_an_agent_calling_admin_and_auditor_endpoints_is_refused_and_audited(
    orgs_server: RunningServer,
) -> None:
    with api(orgs_server, "bob") as bob:
        changed = bob.patch("/api/users/ada?token=s3cret-query", json={"role": "agent"})
        assert changed.status_code == 403, changed.text
        assert bob.get("/api/audit?after=0").status_code == 403
        assert bob.post("/api/subjects/erase", json={"subject": "customer:x"}).status_code == 403
    assert refusals(orgs_server) == [
        ("bob", "users.manage", "PATCH", "/api/users/{username}"),
        ("bob", "audit.read", "GET", "/api/audit"),
        ("bob", "org.manage", "POST", "/api/subjects/erase"),
    ]
    [first, *_] = trail_of(orgs_server, "access_refused")
    assert first["subject"] == ""
    assert first["details"]["reason"] == "the agent role does not allow users.manage"
    # The route's template, never the raw path: no id, no query string, anywhere in the record
    # but its hashes (hex, in which "ada" turns up by chance in about one record in thirty).
    text = json.dumps({k: v for k, v in first.items() if k not in ("prev_hash", "hash")})
    assert "ada" not in text and "s3cret" not in text and "token" not in text
    # Nothing was changed: ada is still an admin.
    with api(orgs_server, "ada") as ada:
        [user] = [u for u in ada.get("/api/users").json() if u["username"] == "ada"]
        assert user["role"] == "admin"


async def test_refusals_inside_a_handler_and_on_the_agent_socket_are_audited(
    orgs_server: RunningServer,
) -> None:
    with api(orgs_server, "ada") as ada:  # only the operator creates auditors (in the handler)
        created = ada.post(
            "/api/users", json={"username": "eve", "password": AGENT_PASSWORD, "role": "auditor"}
        )
        assert created.status_code == 403, created.text
    with api(orgs_server, "aud") as aud:  # an auditor has nothing live
        socket = await open_agent(orgs_server, aud.cookies["tandem_agent"])
        code, _ = await closed_with(socket)
        assert code == 4403
    assert refusals(orgs_server) == [
        ("ada", "users.manage", "POST", "/api/users"),
        ("aud", "session.join", "WEBSOCKET", "/ws/agent"),
    ]
    [by_handler, _] = trail_of(orgs_server, "access_refused")
    assert "operator" in by_handler["details"]["reason"]


async def test_the_auditor_finds_refusals_by_searching_the_trail(
    orgs_server: RunningServer,
) -> None:
    with api(orgs_server, "sam") as sam:
        assert sam.get("/api/users").status_code == 403
    with api(orgs_server, "aud") as aud:
        for q in ("access_refused", "refused", "sam"):
            found = aud.get("/api/audit/search", params={"q": q}).json()
            assert [r["details"]["route"] for r in found if r["action"] == "access_refused"] == [
                "/api/users"
            ], q


async def test_one_accounts_flood_of_refusals_is_bounded_and_anothers_still_recorded(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        seed=two_organisations, refusal_audit_burst=3, refusal_audit_window_seconds=60
    )
    with api(server, "bob") as bob, api(server, "sam") as sam:
        for i in range(10):
            assert bob.patch(f"/api/users/u{i}", json={}).status_code == 403
            if i in (4, 8):  # in the middle of bob's flood
                assert sam.get("/api/audit").status_code == 403
        assert [a for a, *_ in refusals(server)] == ["bob", "bob", "bob", "sam", "sam"]
        assert trail_of(server, "access_refused_summary") == []  # the window is not over
        server.clock.advance(61)
        await wait_for(lambda: trail_of(server, "access_refused_summary") != [])
        [summary] = trail_of(server, "access_refused_summary")
        assert summary["actor"] == "bob"
        assert summary["details"]["refused"] == 7  # 10 refused, 3 recorded in full
        # A new window: recorded in full again.
        assert bob.delete("/api/teams/support").status_code == 403
    assert refusals(server)[-1] == ("bob", "teams.manage", "DELETE", "/api/teams/{team}")
    assert len(trail_of(server, "access_refused")) == 6


async def test_a_stopping_server_writes_the_summary_of_the_window_it_is_in(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations, refusal_audit_burst=1)
    with api(server, "bob") as bob:
        for _ in range(3):
            assert bob.get("/api/audit").status_code == 403
    server.stop()  # long before the window ends
    records, _ = await trail(server.settings.data_dir)
    actions = [r.action for r in records if r.actor in ("bob", "server")]
    assert actions[-3:] == ["access_refused", "access_refused_summary", "server_stopped"]
    [summary] = [r for r in records if r.action == "access_refused_summary"]
    assert summary.actor == "bob" and summary.details["refused"] == 2


async def test_a_refusal_while_the_audit_trail_fails_is_still_403_and_recorded_later(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    async with pg_server(server_factory, tmp_path) as (server, schema):
        with api(server, "bob") as bob:
            async with audit_refuses(schema, "access_refused"):
                refused = bob.delete("/api/users/ada")
                assert refused.status_code == 403, refused.text
                assert refused.json()["title"] == "Forbidden"
                assert await audited(schema, "access_refused") == []
            await eventually(lambda: audited(schema, "access_refused"))
            [(_, subject)] = await audited(schema, "access_refused")
            assert subject == ""


async def test_a_refused_attacker_cannot_remove_the_evidence_unnoticed(
    orgs_server: RunningServer,
) -> None:
    # Refused, the agent then tries to destroy what would show it: the erasure, export and
    # audit endpoints are refused too (and recorded), and nothing was erased.
    with api(orgs_server, "bob") as bob:
        assert bob.patch("/api/users/ada", json={"role": "agent"}).status_code == 403
        assert bob.delete("/api/recordings/r-1").status_code == 403
        assert bob.post("/api/subjects/erase", json={"subject": "customer:x"}).status_code == 403
        assert bob.post("/api/subjects/export", json={"subject": "customer:x"}).status_code == 403
        assert bob.get("/api/audit/search", params={"q": "bob"}).status_code == 403
    assert [(a, n) for a, n, *_ in refusals(orgs_server)] == [
        ("bob", "users.manage"),
        ("bob", "org.manage"),
        ("bob", "org.manage"),
        ("bob", "audit.read"),
    ]
    assert len(trail_of(orgs_server, "recording_refused")) == 1  # the recording's own record
    orgs_server.stop()
    data = orgs_server.settings.data_dir
    assert run_verify(data).returncode == 0
    records, _ = await trail(data)
    evidence = [r for r in records if r.actor == "bob" and r.action.endswith("_refused")]
    assert len(evidence) == 5
    # With the database file in hand: the evidence deleted, the chain rewritten without the key.
    rewrite_without_the_key(data, [r for r in records if r not in evidence])
    result = run_verify(data)
    assert result.returncode == 1 and "BROKEN" in result.stderr, result.stdout
    # Or only deleted, the guards dropped first.
    tamper(data, "DELETE FROM audit")
    _restore(data, records)
    assert run_verify(data).returncode == 0  # restored as it was
    tamper(data, "DELETE FROM audit WHERE actor = 'bob' AND action LIKE '%_refused'")
    result = run_verify(data)
    assert result.returncode == 1 and "BROKEN" in result.stderr, result.stdout


def _restore(data: Path, records: list[Any]) -> None:
    """The trail as the server wrote it (numbers, hashes and MACs unchanged)."""
    with sqlite3.connect(data / "tandem.sqlite3") as db:
        db.executemany(
            INSERT_AUDIT_ROW, [audit_row(r, r.seq, r.prev_hash, r.hash) for r in records]
        )

"""A customer's yes is never taken without its audit record: PostgreSQL refuses the
``consent_given`` record (a trigger on the audit table raising ``disk_full``, exactly there).
The customer's socket is closed 1013 and the session stays waiting for consent; the agent sees
nothing shared. Before, the session had moved to sharing all the same: the customer's page
resumed into it and shared, with no record of the consent, and the agent's console was never
told of it. Once the database answers, the resumed page is asked again, and its yes is recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import ServerFactory
from tests.server.helpers import closed_with, pending_session, recv_json, resume_on, send
from tests.server.test_audit_after_faults import audit_refuses, audited, pg_server


async def test_consent_whose_record_is_refused_is_not_taken_and_is_asked_again(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    async with pg_server(server_factory, tmp_path) as (server, schema):
        customer, agent, created = await pending_session(server)
        async with audit_refuses(schema, "consent_given"):
            await send(customer, type="consent", granted=True)
            assert await closed_with(customer, timeout=30) == (
                1013,
                "database not answering: try again soon",
            )
            # The agent hears the customer went, and nothing of a consent.
            assert await recv_json(agent) == {"v": 1, "type": "peer", "connected": False}
            again, resumed = await resume_on(server, created)
            assert resumed["type"] == "resumed"
            assert resumed["state"] == "pending_consent"
            assert await audited(schema, "consent_given") == []
        assert await recv_json(agent) == {"v": 1, "type": "peer", "connected": True}
        await send(again, type="consent", granted=True)
        assert await recv_json(agent) == {"v": 1, "type": "consent", "granted": True}
        [(_, subject)] = await audited(schema, "consent_given")
        assert subject == created["session_id"]
        await again.send(b"\x01shared")
        assert await asyncio.wait_for(agent.recv(), 5) == b"\x01shared"

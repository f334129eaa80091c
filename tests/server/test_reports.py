"""The customer's browser reports its control and pause decisions for the audit trail: names only,
only while sharing, and no more than MAX_REPORTS per session."""

from __future__ import annotations

from tandem.protocol.session import MAX_REPORTS
from tests.conftest import RunningServer
from tests.server.helpers import closed_with, pending_session, send, sharing_session
from tests.server.test_admin_api import audit_actions
from tests.server.test_organisations import api

EVENTS = (
    "control_granted",
    "control_revoked",
    "control_refused",
    "page_paused",
    "page_resumed",
    "controls_hidden",
    "controls_shown",
)


async def test_reports_while_sharing_become_audit_records(orgs_server: RunningServer) -> None:
    customer, alice, created = await sharing_session(orgs_server)
    for event in EVENTS:
        await send(customer, type="report", event=event)
    await customer.send(b"\x01still-sharing")  # reports reach no one else
    assert await alice.recv() == b"\x01still-sharing"
    with api(orgs_server, "aud") as aud:
        records = [r for r in aud.get("/api/audit").json() if r["action"] in EVENTS]
    assert [r["action"] for r in records] == list(EVENTS)
    for record in records:
        assert record["actor"] == "customer"
        assert record["subject"] == created["session_id"]
        assert record["details"] == {"agent": "alice"}


async def test_an_unknown_or_early_report_is_refused(orgs_server: RunningServer) -> None:
    customer, _, _ = await pending_session(orgs_server)
    await send(customer, type="report", event="control_granted")  # nothing is shared yet
    assert (await closed_with(customer))[0] == 4400
    customer, _, _ = await sharing_session(orgs_server)
    await send(customer, type="report", event="card_number:4111111111111111")
    assert (await closed_with(customer))[0] == 4400
    assert "control_granted" not in audit_actions(orgs_server)


async def test_a_flood_of_reports_is_capped(orgs_server: RunningServer) -> None:
    customer, alice, _ = await sharing_session(orgs_server)
    for _ in range(MAX_REPORTS + 50):
        await send(customer, type="report", event="page_paused")
    await customer.send(b"\x01after")
    assert await alice.recv() == b"\x01after"
    assert audit_actions(orgs_server).count("page_paused") == MAX_REPORTS


async def test_a_flood_of_pauses_leaves_room_for_control_decisions(
    orgs_server: RunningServer,
) -> None:
    """A page that pauses sharing again and again (a cover over Stop sharing, private routes)
    used up the session's reports: the control the customer gave afterwards went unrecorded."""
    customer, alice, _ = await sharing_session(orgs_server)
    for _ in range(MAX_REPORTS + 10):
        await send(customer, type="report", event="controls_hidden")
    await send(customer, type="report", event="control_granted")
    await customer.send(b"\x01after")
    assert await alice.recv() == b"\x01after"
    actions = audit_actions(orgs_server)
    assert actions.count("controls_hidden") == MAX_REPORTS
    assert actions.count("control_granted") == 1

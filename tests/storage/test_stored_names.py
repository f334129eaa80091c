"""Names stored before the name rule (tandem.names), or written into the database behind the
server's back, are read as the rule has them: every reader (the customer's widget through
``joined``, the console's lists, the CLI) gets a name whose invisible characters show. SQLite and
PostgreSQL."""

from __future__ import annotations

import dataclasses

from tandem.names import REPLACEMENT, name_refusal
from tandem.storage.base import OrgRecord, SiteRecord, Storage, UserRecord
from tests.grants import of_org, owned
from tests.storage.test_suspended_sessions import handed_over

LOOK_ALIKE = "Ann Smith\u200e"
"""Stored by an earlier version (which let U+200E through): it looked like "Ann Smith"."""


async def test_names_stored_before_the_rule_are_read_with_their_invisible_characters_shown(
    storage: Storage,
) -> None:
    await storage.add_org(OrgRecord("acme", "Acme\u202e Bank", 0.0))
    await storage.add_user(*owned(UserRecord("ann", LOOK_ALIKE, "agent", "h", 0.0, org_id="acme")))
    await storage.add_user(
        *owned(UserRecord("nil", "\u3164\u200b", "agent", "h", 0.0, org_id="acme"))
    )
    site = SiteRecord("shop", "acme", "https://shop.example", "Shop" + "\u0301" * 300)
    await storage.add_site(*owned(site))
    await storage.record_session_start(of_org("acme"), "s1", 10.0, "shop")
    await storage.record_session_state("s1", "live", "\u2067Ann Smith")

    user = await storage.get_user("ann")
    assert user is not None and user.display_name == f"Ann Smith{REPLACEMENT}"
    listed = {u.username: u.display_name for u in await storage.list_users(of_org("acme"))}
    assert listed == {"ann": f"Ann Smith{REPLACEMENT}", "nil": REPLACEMENT + REPLACEMENT}
    org = await storage.get_org(of_org("acme"))
    assert org is not None and org.name == f"Acme{REPLACEMENT} Bank"
    assert [o.name for o in await storage.all_orgs() if o.org_id == "acme"] == [org.name]
    stored_site = await storage.get_site("shop")
    assert stored_site is not None and name_refusal(stored_site.name) is None
    assert stored_site.name.startswith("Shop\u0301")
    session = await storage.get_session("s1")
    assert session is not None and session.agent == f"{REPLACEMENT}Ann Smith"
    for record in await storage.live_sessions(of_org("acme")):
        assert record.agent is None or name_refusal(record.agent) is None


async def test_a_session_handed_over_by_an_earlier_version_is_taken_up_with_its_agents_name_shown(
    storage: Storage,
) -> None:
    """A server stopping for an upgrade hands its live sessions over to the next version (the
    suspended sessions): the agent's display name in the row is what the earlier version had, an
    invisible U+200E in it. It went to the customer's widget as it was, and the widget, whose rule
    refuses it, ended the session its customer was sharing."""
    for session_id in ("s1", "s2"):
        await storage.record_session_start(of_org("default"), session_id, 50.0, "demo", "old")
        row = dataclasses.replace(handed_over(session_id), agent=LOOK_ALIKE)
        await storage.suspend_session(row)
    got = await storage.get_suspended("s1")
    assert got is not None and got.agent == f"Ann Smith{REPLACEMENT}"
    taken = await storage.take_suspended("s2", "new", 101.0)
    assert taken is not None and taken.agent == f"Ann Smith{REPLACEMENT}"

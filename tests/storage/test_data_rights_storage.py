"""Data subject requests name exactly one customer, on both databases: an identifier matches a
``sub`` or a session id exactly (no case folding, no prefix, no SQL wildcard, no look-alike
character), and one that is both a session's id and another customer's ``sub`` is refused as
ambiguous until the admin says which it is (tandem.subjects)."""

from __future__ import annotations

from typing import Any

import pytest

from tandem.audit import AuditLog, verify
from tandem.directory import operator
from tandem.exceptions import ConflictError, NotFoundError
from tandem.storage.base import Storage
from tandem.subjects import Subjects
from tests.grants import of_org

KEY = b"k" * 32
ADMIN = operator("default")
SUB = "ana.lee@shop.example"


class Trail:
    """Subjects over ``storage`` with a real, verifiable audit trail."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.log = AuditLog(storage, KEY, anchor_every=5)
        self.subjects = Subjects(storage, self.record, lambda: 1000.0)

    async def record(self, action: str, **fields: Any) -> None:
        await self.log.record(1000.0, action, **fields)

    async def customer(self, session_id: str, sub: str | None) -> None:
        """An ended session of ``sub`` (None: started without a token), with its records."""
        await self.storage.record_session_start(of_org("default"), session_id, 10.0, "demo")
        actor = "customer"
        if sub is not None:
            pseudonym = await self.storage.link_subject(
                of_org("default"), sub, session_id, f"p-{session_id}"
            )
            actor = f"customer:{pseudonym}"
        await self.record("session_created", actor=actor, org="default", subject=session_id)
        await self.storage.record_session_end(session_id, 20.0, "customer_left", "Alice")

    async def verified(self) -> bool:
        records = await self.storage.audit_records(0.0)
        return verify(records, await self.storage.anchors(), KEY, legacy_every=5).ok


LOOK_ALIKES = {
    "upper case": "ANA.LEE@shop.example",
    "domain upper case": "ana.lee@SHOP.example",
    "prefix": "ana.lee",
    "shorter": "ana.lee@shop.exampl",
    "longer": "ana.lee@shop.example.",
    "LIKE percent": "ana%",
    "LIKE percent alone": "%",
    "LIKE underscore": "ana_lee@shop.example",
    "LIKE underscore inside": "ana.lee@shop.examp_e",
    "Cyrillic a": "\u0430na.lee@shop.example",
    "full-width a": "\uff41na.lee@shop.example",
    "zero-width space": "ana.lee@shop.example\u200b",
}


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
async def test_an_identifier_names_exactly_one_customer(storage: Storage, look_alike: str) -> None:
    trail = Trail(storage)
    await trail.customer("s1", SUB)
    await trail.customer("s2", "ana.lee@shop.example.org")  # shares a prefix
    asked = LOOK_ALIKES[look_alike]
    assert (await trail.subjects.find(ADMIN, asked)).empty
    with pytest.raises(NotFoundError):
        await trail.subjects.export(ADMIN, asked)
    with pytest.raises(NotFoundError):
        await trail.subjects.erase(ADMIN, asked)
    assert (await trail.subjects.find(ADMIN, SUB)).session_ids == ("s1",)  # untouched
    assert (await trail.subjects.find(ADMIN, "ana.lee@shop.example.org")).session_ids == ("s2",)


@pytest.mark.parametrize("victim_sub", ["eve", None], ids=["with a token", "tokenless"])
async def test_a_session_id_that_is_another_customers_sub_is_refused_until_named(
    storage: Storage, victim_sub: str | None
) -> None:
    """Mallory's site lets her choose her sub: she picks the id of Eve's session. Her request
    ("export my data, my sub is s-eve") answered with Eve's data, and Eve's ("erase my session
    s-eve") would have erased the one or the other depending on how the id was read."""
    trail = Trail(storage)
    await trail.customer("s-eve", victim_sub)
    await trail.customer("s-mallory", "s-eve")
    for attempt in (trail.subjects.find, trail.subjects.export, trail.subjects.erase):
        with pytest.raises(ConflictError, match="both the id of a session and the sub"):
            await attempt(ADMIN, "s-eve")
    assert await storage.get_session("s-eve") is not None  # nothing erased
    assert await storage.get_session("s-mallory") is not None
    assert (await trail.subjects.find(ADMIN, "s-eve", "session")).session_ids == ("s-eve",)
    as_sub = await trail.subjects.find(ADMIN, "s-eve", "sub")
    assert as_sub.session_ids == ("s-mallory",)
    findings, _ = await trail.subjects.export(ADMIN, "s-eve", "sub")
    assert findings.session_ids == ("s-mallory",)
    erased = await trail.subjects.erase(ADMIN, "s-eve", "sub")
    assert erased["sessions"] == 1
    assert await storage.get_session("s-mallory") is None
    assert await storage.get_session("s-eve") is not None  # Eve's stays
    assert await trail.verified()


async def test_a_hold_on_a_session_id_that_is_another_customers_sub_is_refused(
    storage: Storage,
) -> None:
    trail = Trail(storage)
    await trail.customer("s-eve", "eve")
    await trail.customer("s-mallory", "s-eve")
    with pytest.raises(ConflictError, match="both the id of a session and the sub"):
        await trail.subjects.place_hold(ADMIN, "subject", "s-eve", "case 1")
    assert await storage.list_holds(of_org("default")) == []
    placed = await trail.subjects.place_hold(ADMIN, "subject", "s-mallory", "case 1")
    assert placed.hold.target == "s-eve" and placed.sessions == ("s-mallory",)


async def test_a_customer_whose_sub_is_its_own_session_id_is_not_ambiguous(
    storage: Storage,
) -> None:
    trail = Trail(storage)
    await trail.customer("s1", "s1")
    assert (await trail.subjects.find(ADMIN, "s1")).session_ids == ("s1",)
    assert (await trail.subjects.erase(ADMIN, "s1"))["sessions"] == 1

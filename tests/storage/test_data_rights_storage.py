"""Data subject requests name exactly one customer, on both databases: an identifier matches a
``sub`` or a session id exactly (no case folding, no prefix, no SQL wildcard, no look-alike
character), and one that is both a session's id and another customer's ``sub`` is refused as
ambiguous until the admin says which it is (tandem.subjects); an erasure is refused by a hold
placed after its own check, and leaves the link of a session it did not list."""

from __future__ import annotations

import io
import unicodedata
import zipfile
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tandem.access import Grant
from tandem.audit import AuditLog, verify
from tandem.crypto import system_entropy
from tandem.directory import operator
from tandem.exceptions import ConflictError, NotFoundError
from tandem.storage import migrations
from tandem.storage.base import (
    HoldRecord,
    LoginRecord,
    OrgRecord,
    PracticeRecord,
    RecordingRecord,
    Storage,
    UserRecord,
)
from tandem.storage.schema import metadata
from tandem.storage.sql import SQLStorage
from tandem.subjects import PSEUDONYM_SHAPE, Subjects, canonical_forms, new_pseudonym
from tests.grants import of_org, owned
from tests.storage.test_audit_storage import Backend, backend  # noqa: F401 (a fixture)

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


async def test_records_named_by_the_sub_before_pseudonyms_are_still_found(
    storage: Storage,
) -> None:
    """A record an older version wrote names the customer as ``customer:<sub>``: found by it."""
    trail = Trail(storage)
    await trail.record("session_created", actor=f"customer:{SUB}", org="default", subject="s0")
    found = await trail.subjects.find(ADMIN, SUB)
    assert [r.subject for r in found.audit] == ["s0"]


@pytest.mark.parametrize("by", [None, "sub"])
async def test_an_identifier_shaped_like_a_pseudonym_reaches_no_other_customers_records(
    storage: Storage, by: Literal["sub"] | None
) -> None:
    """Eve's records name her pseudonym. Mallory's site lets her choose her sub: she takes
    Eve's pseudonym, read off a shared screen of the trail; or an admin pastes it from the
    trail as a customer's identifier. The match of records written before pseudonyms
    (``customer:<sub>``) handed Eve's records, and her control decisions, to that export."""
    trail = Trail(storage)
    await storage.record_session_start(of_org("default"), "s-eve", 10.0, "demo")
    eves = await storage.link_subject(
        of_org("default"), "eve", "s-eve", new_pseudonym(system_entropy)
    )
    assert PSEUDONYM_SHAPE.fullmatch(eves)
    await trail.record("session_created", actor=f"customer:{eves}", org="default", subject="s-eve")
    await trail.record("session_ended", actor=f"customer:{eves}", org="default", subject="s-eve")
    pasted = await trail.subjects.find(ADMIN, eves, by)
    assert pasted.empty
    await trail.customer("s-mallory", eves)  # Mallory's sub: Eve's pseudonym
    mallorys = await trail.subjects.find(ADMIN, eves, by)
    assert mallorys.session_ids == ("s-mallory",)
    assert {r.subject for r in mallorys.audit} == {"s-mallory"}
    _, archive = await trail.subjects.export(ADMIN, eves, by)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert "s-eve" not in opened.read("audit.jsonl").decode()
        assert "s-mallory" in opened.read("audit.jsonl").decode()
    assert {r.subject for r in (await trail.subjects.find(ADMIN, "eve")).audit} == {"s-eve"}


COMPOSED = "caf\u00e9.lee@shop.example"  # NFC
DECOMPOSED = "cafe\u0301.lee@shop.example"  # NFD: the same text
FORMS = {
    "stored NFD, asked NFC": (DECOMPOSED, COMPOSED),
    "stored NFC, asked NFD": (COMPOSED, DECOMPOSED),
}


@pytest.mark.parametrize("forms", FORMS)
async def test_a_customer_is_found_and_erased_in_either_normalisation_form(
    storage: Storage, forms: str
) -> None:
    """An older version stored the sub as the site wrote it (macOS and some identity systems
    write NFD); the admin types the request in the other form. It was compared byte for byte:
    the erasure found nothing and said so, the person was never erased."""
    stored, asked = FORMS[forms]
    trail = Trail(storage)
    await trail.customer("s1", stored)
    assert (await trail.subjects.find(ADMIN, asked)).session_ids == ("s1",)
    erased = await trail.subjects.erase(ADMIN, asked)
    assert (erased["sessions"], erased["links"]) == (1, 1)
    assert (await trail.subjects.find(ADMIN, stored)).empty
    assert await trail.verified()


COMPATIBLE = {
    "full-width c": "\uff43af\u00e9.lee@shop.example",
    "Cyrillic e with an accent": "caf\u0435\u0301.lee@shop.example",
    "e and a spacing acute": "cafe\u00b4.lee@shop.example",
}


@pytest.mark.parametrize("look_alike", COMPATIBLE)
async def test_a_look_alike_of_an_accented_sub_still_names_nobody(
    storage: Storage, look_alike: str
) -> None:
    """Canonical equivalence only: compatibility look-alikes are another customer's text."""
    trail = Trail(storage)
    await trail.customer("s1", DECOMPOSED)
    assert (await trail.subjects.find(ADMIN, COMPATIBLE[look_alike])).empty
    with pytest.raises(NotFoundError):
        await trail.subjects.erase(ADMIN, COMPATIBLE[look_alike])
    assert (await trail.subjects.find(ADMIN, COMPOSED)).session_ids == ("s1",)


async def test_a_sub_an_older_version_stored_in_both_forms_is_one_customer(
    storage: Storage,
) -> None:
    """The site issued the same sub in both forms (one sign-in page composed it, another did
    not) and an older version stored each apart, with a pseudonym each. Both came in tokens
    the site signed, and are the same text: one customer, found, exported and erased whole
    (erasing one form left the other's sessions, the person still findable)."""
    trail = Trail(storage)
    await trail.customer("s1", DECOMPOSED)
    await trail.customer("s2", COMPOSED)
    found = await trail.subjects.find(ADMIN, COMPOSED)
    assert set(found.session_ids) == {"s1", "s2"}
    assert {r.subject for r in found.audit} == {"s1", "s2"}
    erased = await trail.subjects.erase(ADMIN, DECOMPOSED)
    assert (erased["sessions"], erased["links"]) == (2, 2)
    for form in (COMPOSED, DECOMPOSED):
        assert await storage.subject_sessions(of_org("default"), form) == []


async def test_a_customer_an_older_version_stored_keeps_their_form_and_pseudonym(
    storage: Storage,
) -> None:
    """A returning customer's token now says NFC; an older version linked them in NFD. A new
    link under NFC made them two stored forms with two pseudonyms, of which a hold held one."""
    await storage.link_subject(of_org("default"), DECOMPOSED, "s1", "p-old")
    again = await storage.link_subject(
        of_org("default"), COMPOSED, "s2", "p-new", canonical_forms(COMPOSED)[1:]
    )
    assert again == "p-old"
    linked = await storage.subject_sessions(of_org("default"), DECOMPOSED)
    assert sorted(linked) == [("s1", "p-old"), ("s2", "p-old")]


async def test_a_hold_asked_in_another_form_holds_the_customer_as_stored(
    storage: Storage,
) -> None:
    """A hold typed NFC on a customer stored NFD was stored under NFC: purge, comparing it
    as stored, kept nothing of theirs."""
    trail = Trail(storage)
    await trail.customer("s1", DECOMPOSED)
    placed = await trail.subjects.place_hold(ADMIN, "subject", COMPOSED, "case 2026-7")
    assert placed.hold.target == DECOMPOSED and placed.sessions == ("s1",)
    with pytest.raises(ConflictError):
        await trail.subjects.erase(ADMIN, COMPOSED)


async def test_a_hold_an_older_version_stored_in_another_form_can_be_lifted(
    storage: Storage,
) -> None:
    """An older version stored a hold as typed (NFC) on a customer stored NFD. Erasure honours
    it under any spelling now; lifting it, as typed or in the stored form, found no hold."""
    trail = Trail(storage)
    await trail.customer("s1", DECOMPOSED)
    old = HoldRecord("default", "subject", COMPOSED, "case 2026-8", "ada", 1.0)
    assert await storage.put_hold(of_org("default"), old)
    with pytest.raises(ConflictError):
        await trail.subjects.erase(ADMIN, DECOMPOSED)
    with pytest.raises(ConflictError):  # one hold on the customer is enough
        await trail.subjects.place_hold(ADMIN, "subject", DECOMPOSED, "case 2026-9")
    lifted = await trail.subjects.lift_hold(ADMIN, "subject", DECOMPOSED, "case closed")
    assert lifted.target == COMPOSED
    assert await storage.list_holds(of_org("default")) == []
    assert (await trail.subjects.erase(ADMIN, COMPOSED))["links"] == 1


async def test_a_hold_an_older_version_stored_in_another_form_keeps_the_customer_from_purge(
    storage: Storage,
) -> None:
    """An older version stored a hold as typed (NFC) on a customer stored NFD (and NFC: both
    forms). Retention's purge and a recording's erasure compared it as stored and took the
    customer's NFD sessions and recordings all the same: the hold a court asked for held
    nothing of them."""
    trail = Trail(storage)
    await trail.customer("s1", DECOMPOSED)
    await trail.customer("s2", COMPOSED)  # stored in both forms (the site issued it both ways)
    await storage.add_recording(
        *owned(RecordingRecord("r1", "default", "s1", "demo", "alice", "k1", 11.0))
    )
    await storage.end_recording("r1", 19.0, "stopped")
    old = HoldRecord("default", "subject", COMPOSED, "case 2026-8", "ada", 1.0)
    assert await storage.put_hold(of_org("default"), old)
    with pytest.raises(ConflictError):
        await storage.delete_recording("r1")
    later = 20.0 + 31 * 86400  # the default organisation keeps 30 days
    assert await storage.purge_recordings(later) == []
    await storage.purge_expired(later)
    assert await storage.get_session("s1") is not None
    assert await storage.get_session("s2") is not None
    assert await storage.subject_sessions(of_org("default"), DECOMPOSED) != []
    # Lifted, the purge takes them.
    await trail.subjects.lift_hold(ADMIN, "subject", DECOMPOSED, "case closed")
    assert [r.recording_id for r in await storage.purge_recordings(later)] == ["r1"]
    await storage.purge_expired(later)
    assert await storage.get_session("s1") is None
    assert await storage.get_session("s2") is None


# "ệ" (e, dot below, circumflex): NFC one letter, NFD three, and two spellings that are
# neither (partly composed: a precomposed letter beside a combining mark), the same text.
VIET_NFC = "nguy\u1ec7n@shop.example"
VIET_NFD = unicodedata.normalize("NFD", VIET_NFC)
VIET_PARTLY = "nguy\u1eb9\u0302n@shop.example"  # "ẹ" and a circumflex
VIET_PARTLY_TOO = "nguy\u00ea\u0323n@shop.example"  # "ê" and a dot below


async def test_a_hold_asked_in_any_form_holds_a_customer_stored_partly_composed(
    storage: Storage,
) -> None:
    """Typed NFC on a customer an older version stored partly composed, the hold was stored
    under NFC and named nothing stored: it said it kept no session, and purge, comparing it as
    stored, took the customer's sessions."""
    trail = Trail(storage)
    await trail.customer("s1", VIET_PARTLY)
    placed = await trail.subjects.place_hold(ADMIN, "subject", VIET_NFC, "case 2026-12")
    assert placed.hold.target == VIET_PARTLY and placed.sessions == ("s1",)
    await storage.purge_expired(20.0 + 31 * 86400)
    assert await storage.get_session("s1") is not None


# "क़" as one code point (U+0958): a composition exclusion, so NFC and NFD are the same text
# (decomposed), and the code point typed is a third spelling that neither form gives.
QA_EXCLUDED = "\u0958-lee@shop.example"
QA_NFC = unicodedata.normalize("NFC", QA_EXCLUDED)


async def test_a_returning_customer_whose_text_has_one_normal_form_keeps_their_pseudonym(
    storage: Storage,
) -> None:
    """A text whose NFC and NFD are the same has no other form to ask for, yet an older version
    may have stored a third spelling of it (a composition exclusion, as typed): the returning
    customer was linked apart, two customers with two pseudonyms."""
    assert QA_NFC == unicodedata.normalize("NFD", QA_EXCLUDED) != QA_EXCLUDED
    assert canonical_forms(QA_NFC) == (QA_NFC,)
    await storage.link_subject(of_org("default"), QA_EXCLUDED, "s1", "p-old")
    again = await storage.link_subject(
        of_org("default"), QA_NFC, "s2", "p-new", canonical_forms(QA_NFC)[1:], any_form=True
    )
    assert again == "p-old"


def test_the_partly_composed_spellings_are_the_same_text_in_neither_form() -> None:
    for partly in (VIET_PARTLY, VIET_PARTLY_TOO):
        assert partly not in (VIET_NFC, VIET_NFD)
        assert unicodedata.normalize("NFC", partly) == VIET_NFC
        assert partly not in canonical_forms(VIET_NFC)


async def test_a_partly_composed_sub_an_older_version_stored_is_found_in_any_form(
    storage: Storage,
) -> None:
    """An older version stored the customer's ``sub`` as the site wrote it: partly composed.
    Looked up in NFC, in NFD and as typed, a request in any other spelling (the admin's
    keyboard composes it) found nothing, and the erasure silently missed the person."""
    trail = Trail(storage)
    await trail.customer("s1", VIET_PARTLY)
    for asked in (VIET_NFC, VIET_NFD, VIET_PARTLY, VIET_PARTLY_TOO):
        assert (await trail.subjects.find(ADMIN, asked)).session_ids == ("s1",), asked
    erased = await trail.subjects.erase(ADMIN, VIET_PARTLY_TOO)
    assert (erased["sessions"], erased["links"]) == (1, 1)
    assert await storage.stored_forms(of_org("default"), VIET_NFC) == ()
    assert await storage.get_session("s1") is None


async def test_a_returning_customer_stored_partly_composed_keeps_their_form_and_pseudonym(
    storage: Storage,
) -> None:
    """Their token now says NFC: linked apart under it, they were two customers with two
    pseudonyms, and an erasure of one form left the other."""
    await storage.link_subject(of_org("default"), VIET_PARTLY, "s1", "p-old")
    again = await storage.link_subject(
        of_org("default"), VIET_NFC, "s2", "p-new", canonical_forms(VIET_NFC)[1:], any_form=True
    )
    assert again == "p-old"
    linked = await storage.subject_sessions(of_org("default"), VIET_PARTLY)
    assert sorted(linked) == [("s1", "p-old"), ("s2", "p-old")]


async def test_a_hold_stored_partly_composed_keeps_its_customer_from_purge_and_erasure(
    storage: Storage,
) -> None:
    """An older version stored a hold as typed, partly composed one way, on a customer it
    stored partly composed the other way: purge, a recording's erasure and a subject's erasure
    compared the two as stored (or in NFC and NFD) and took what the court asked to keep."""
    trail = Trail(storage)
    await trail.customer("s1", VIET_PARTLY)
    await storage.add_recording(
        *owned(RecordingRecord("r1", "default", "s1", "demo", "alice", "k1", 11.0))
    )
    await storage.end_recording("r1", 19.0, "stopped")
    old = HoldRecord("default", "subject", VIET_PARTLY_TOO, "case 2026-11", "ada", 1.0)
    assert await storage.put_hold(of_org("default"), old)
    with pytest.raises(ConflictError):
        await trail.subjects.erase(ADMIN, VIET_NFC)
    with pytest.raises(ConflictError):
        await storage.delete_recording("r1")
    later = 20.0 + 31 * 86400  # the default organisation keeps 30 days
    assert await storage.purge_recordings(later) == []
    await storage.purge_expired(later)
    assert await storage.get_session("s1") is not None
    lifted = await trail.subjects.lift_hold(ADMIN, "subject", VIET_NFD, "case closed")
    assert lifted.target == VIET_PARTLY_TOO
    assert [r.recording_id for r in await storage.purge_recordings(later)] == ["r1"]


async def test_links_an_older_version_stored_in_any_form_get_their_key_on_upgrade(
    backend: Backend,  # noqa: F811 (the fixture imported above)
) -> None:
    """Revision 0015 keys every link already stored (partly composed, NFD, plain) by its NFC
    form, on both databases: a customer an older version stored partly composed is found,
    linked again and erased by any spelling after the upgrade, not only by new links."""
    stored = {"s1": VIET_PARTLY, "s2": VIET_NFD, "s3": "plain@shop.example"}

    async def fill(engine: AsyncEngine) -> None:
        async with engine.begin() as db:
            await db.run_sync(migrations.upgrade, "0013")
            await db.execute(
                sa.text(
                    "INSERT INTO subject_sessions (session_id, org_id, subject, pseudonym)"
                    " VALUES (:sid, 'default', :sub, :p)"
                ),
                [{"sid": sid, "sub": sub, "p": f"p-{sid}"} for sid, sub in stored.items()],
            )
        await engine.dispose()

    await backend.fill_old(fill)
    storage = await backend.open()  # migrates
    grant = of_org("default")
    assert await storage.stored_forms(grant, VIET_PARTLY_TOO) == tuple(
        sorted((VIET_PARTLY, VIET_NFD))
    )
    assert await storage.stored_forms(grant, "plain@shop.example") == ("plain@shop.example",)
    trail = Trail(storage)
    assert set((await trail.subjects.find(ADMIN, VIET_NFC)).session_ids) == {"s1", "s2"}
    assert (await trail.subjects.erase(ADMIN, VIET_PARTLY_TOO))["links"] == 2
    assert await storage.subject_sessions(grant, "plain@shop.example") == [("s3", "p-s3")]


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


class HoldPlacedMeanwhile:
    """The storage, where another admin places ``hold`` just after the erasing request
    looked for holds (between its check and its erasure)."""

    def __init__(self, inner: Storage, hold: HoldRecord) -> None:
        self.inner = inner
        self.hold: HoldRecord | None = hold

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def list_holds(self, grant: Grant) -> list[HoldRecord]:
        holds = await self.inner.list_holds(grant)
        if self.hold is not None:
            hold, self.hold = self.hold, None
            assert await self.inner.put_hold(grant, hold)
        return holds


@pytest.mark.parametrize(
    ("kind", "target", "sub"),
    [("subject", SUB, SUB), ("recording", "r-s1", SUB), ("subject", "s1", None)],
    ids=["on the customer", "on a recording", "on a tokenless session"],
)
async def test_a_hold_placed_after_the_erasures_check_still_stops_it(
    storage: Storage, kind: str, target: str, sub: str | None
) -> None:
    trail = Trail(storage)
    await trail.customer("s1", sub)
    await storage.add_recording(
        *owned(RecordingRecord("r-s1", "default", "s1", "demo", "alice", "k1", 11.0))
    )
    await storage.end_recording("r-s1", 19.0, "stopped")
    racing = HoldPlacedMeanwhile(
        storage, HoldRecord("default", kind, target, "case 9", "bea", 1000.0)
    )
    subjects = Subjects(racing, trail.record, lambda: 1000.0)  # type: ignore[arg-type]
    with pytest.raises(ConflictError, match="legal hold"):
        await subjects.erase(ADMIN, sub or "s1")
    assert await storage.get_session("s1") is not None  # nothing erased
    assert await storage.get_recording("r-s1") is not None
    if sub is not None:
        assert await storage.subject_sessions(of_org("default"), sub) == [("s1", "p-s1")]
    assert "subject_erased" not in [r.action for r in await storage.audit_records()]


async def test_an_erasure_takes_only_the_links_of_the_sessions_it_erases(
    storage: Storage,
) -> None:
    """The customer started a session after the erasing request had listed theirs: its link
    went with the others, leaving that session stored but no longer found by the customer's
    sub (so never erased)."""
    trail = Trail(storage)
    await trail.customer("s1", SUB)
    await trail.customer("s2", SUB)  # listed by nobody: began after the request looked
    erased = await storage.erase_subject(of_org("default"), SUB, ["s1"])
    assert (erased.sessions, erased.links) == (("s1",), 1)
    assert await storage.subject_sessions(of_org("default"), SUB) == [("s2", "p-s1")]
    assert (await trail.subjects.find(ADMIN, SUB)).session_ids == ("s2",)


async def every_row_naming(storage: Storage, needle: str) -> set[str]:
    """The tables any row of which holds ``needle`` in any column."""
    found = set()
    async with storage._engine.connect() as db:  # type: ignore[attr-defined]
        for table in metadata.sorted_tables:
            rows = (await db.execute(sa.select(*table.c))).all()
            if any(needle in repr(tuple(row)) for row in rows):
                found.add(table.name)
    return found


async def test_a_deleted_agents_name_stays_only_in_the_trail_and_until_retention(
    storage: Storage,
) -> None:
    """An agent (a data subject too) leaves the company: deleting the account takes its
    sign-ins, teams, training and practice; its name stays in the audit trail (evidence of
    what it did) and in the sessions and recordings it served until their retention runs out."""
    name = "zed-agent-q7"
    trail = Trail(storage)
    await storage.add_user(
        *owned(UserRecord(name, "Zed Q7", "agent", "hash", 0.0, org_id="default"))
    )
    await storage.set_user_teams(of_org("default"), name, ("support",))
    await storage.add_login(LoginRecord("digest-z", name, 10_000.0))
    await storage.acknowledge_policy(of_org("default"), name, 1, 5.0)
    await storage.start_practice(of_org("default"), PracticeRecord("p1", name, "default", 5.0))
    await storage.record_session_start(of_org("default"), "s1", 10.0, "demo")
    await trail.record("agent_joined", actor=name, org="default", subject="s1")
    await storage.add_recording(
        *owned(RecordingRecord("r1", "default", "s1", "demo", name, "k1", 11.0))
    )
    await storage.end_recording("r1", 19.0, "stopped")
    await storage.record_session_end("s1", 20.0, "customer_left", "Zed Q7")
    assert await every_row_naming(storage, name) >= {"users", "team_members", "logins"}
    assert await storage.delete_user(of_org("default"), name)
    assert await every_row_naming(storage, name) == {"audit", "recordings"}
    assert await every_row_naming(storage, "Zed Q7") == {"sessions"}
    later = 20.0 + 31 * 86400  # the default organisation keeps 30 days
    await storage.purge_recordings(later)
    await storage.purge_expired(later)
    assert await every_row_naming(storage, name) == {"audit"}
    assert await every_row_naming(storage, "Zed Q7") == set()
    assert await trail.verified()


async def test_erasing_a_customer_leaves_the_same_sub_in_another_organisation(
    storage: Storage,
) -> None:
    """Two companies' customers may share a sub (their own user ids): one company's erasure
    (by the sub, or by a session id of the other's) takes nothing of the other's."""
    trail = Trail(storage)
    await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    await trail.customer("s1", SUB)
    await storage.record_session_start(of_org("acme"), "a1", 10.0, "acme-shop")
    await storage.link_subject(of_org("acme"), SUB, "a1", "p-a1")
    await storage.record_session_end("a1", 20.0, "customer_left", "Mallory")
    with pytest.raises(NotFoundError):
        await trail.subjects.erase(ADMIN, "a1")  # acme's session: not found here
    assert (await trail.subjects.erase(ADMIN, SUB))["sessions"] == 1
    assert await storage.get_session("a1") is not None
    assert await storage.subject_sessions(of_org("acme"), SUB) == [("a1", "p-a1")]
    assert (await trail.subjects.find(operator("acme"), SUB)).session_ids == ("a1",)


@pytest.mark.parametrize("stored", [VIET_NFC, VIET_NFD, VIET_PARTLY], ids=["nfc", "nfd", "partly"])
async def test_a_link_without_its_key_is_found_and_erased_in_any_form(
    storage: Storage, stored: str
) -> None:
    """A link written with no NFC key (by a server of a version before revision 0015 still
    running while another upgraded the database: a rolling upgrade) is found and erased by
    any canonically equivalent spelling, as a keyed one is."""
    assert isinstance(storage, SQLStorage)
    trail = Trail(storage)
    await trail.customer("s1", stored)
    async with storage._engine.begin() as db:
        await db.execute(sa.text("UPDATE subject_sessions SET subject_key = NULL"))
    for asked in (VIET_NFC, VIET_NFD, VIET_PARTLY_TOO):
        assert (await trail.subjects.find(ADMIN, asked)).session_ids == ("s1",), asked
    assert (await trail.subjects.erase(ADMIN, VIET_PARTLY_TOO))["links"] == 1
    assert await storage.subject_of_session("s1") is None


async def test_a_hold_in_another_form_keeps_a_customer_linked_without_a_key_from_purge(
    storage: Storage,
) -> None:
    """As above, for a legal hold an older version stored in another spelling than the link
    written with no key: retention's purge compared the hold's forms and the keyed links only,
    and took the sessions the court asked to keep."""
    assert isinstance(storage, SQLStorage)
    trail = Trail(storage)
    await trail.customer("s1", VIET_PARTLY)
    async with storage._engine.begin() as db:
        await db.execute(sa.text("UPDATE subject_sessions SET subject_key = NULL"))
    old = HoldRecord("default", "subject", VIET_PARTLY_TOO, "case 2026-11", "ada", 1.0)
    assert await storage.put_hold(of_org("default"), old)
    await storage.purge_expired(20.0 + 31 * 86400)
    assert await storage.get_session("s1") is not None


async def test_a_returning_customer_linked_without_a_key_keeps_their_form_and_pseudonym(
    storage: Storage,
) -> None:
    """As above, for a customer returning (any form of their ``sub``) while their only link
    has no key: they were linked apart, under a new pseudonym."""
    assert isinstance(storage, SQLStorage)
    trail = Trail(storage)
    await trail.customer("s1", VIET_PARTLY)
    async with storage._engine.begin() as db:
        await db.execute(sa.text("UPDATE subject_sessions SET subject_key = NULL"))
    await storage.record_session_start(of_org("default"), "s2", 30.0, "demo")
    grant = of_org("default")
    assert await storage.link_subject(grant, VIET_NFC, "s2", "p-new", any_form=True) == "p-s1"
    assert await storage.subject_of_session("s2") == ("default", VIET_PARTLY, "p-s1")

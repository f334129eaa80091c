"""tandem.reconcile on its own: what the trail says exists against an inventory of rows."""

from __future__ import annotations

from tandem.audit import DELETIONS_RECORDED, GENESIS, AuditRecord
from tandem.reconcile import NEVER, reconcile
from tandem.storage.base import Inventory


def trail(*events: tuple[str, str, str, dict[str, object]]) -> list[AuditRecord]:
    """Records numbered from 1 (hashes do not matter here: verify checks them first)."""
    return [
        AuditRecord(seq, float(seq), action, "x", org, subject, details, GENESIS, GENESIS)
        for seq, (action, org, subject, details) in enumerate(events, start=1)
    ]


def stored(
    head: int,
    sessions: frozenset[tuple[str, str]] = frozenset(),
    recordings: frozenset[tuple[str, str]] = frozenset(),
) -> Inventory:
    return Inventory(head, sessions, recordings)


def test_a_creation_recorded_after_the_rows_were_read_is_not_looked_for() -> None:
    """The rows are read after the head of the trail, the trail after them: a session whose row
    was written after the rows were read has its record after that head."""
    records = trail(("session_created", "acme", "s1", {}), ("session_created", "acme", "s2", {}))
    found = reconcile(records, stored(1, frozenset({("acme", "s1")})))
    assert found.missing == ()


def test_each_missing_row_is_named_with_its_organisation() -> None:
    records = trail(
        ("session_created", "acme", "s1", {}),
        ("recording_started", "acme", "r1", {"session": "s1"}),
        ("session_created", "default", "s1", {}),
    )
    found = reconcile(records, stored(3, frozenset({("acme", "s1")})))
    assert [(m.org, m.kind, m.id, m.created_seq) for m in found.missing] == [
        ("acme", "recording", "r1", 2),
        ("default", "session", "s1", 3),
    ]
    assert "organisation 'acme': recording r1 (created at record 2)" in found.missing[0].line()


def test_a_row_of_the_same_id_in_another_organisation_does_not_stand_for_it() -> None:
    records = trail(("session_created", "acme", "s1", {}))
    assert len(reconcile(records, stored(1, frozenset({("default", "s1")}))).missing) == 1


def test_an_erasure_written_before_erasures_named_their_sessions_is_not_held_against_them() -> None:
    """A subject_erased record without session ids (an older Tandem): the sessions of its
    organisation created before it cannot be told apart from ones deleted by hand; those after
    it can."""
    records = trail(
        ("session_created", "acme", "old", {}),
        ("subject_erased", "acme", "p-1", {"sessions": 1, "recordings": []}),
        ("session_created", "acme", "new", {}),
    )
    found = reconcile(records, stored(3))
    assert [m.id for m in found.missing] == ["new"]
    assert found.unnamed == (("acme", 2),)


def test_deletion_records_of_every_kind_account_for_their_rows() -> None:
    records = trail(
        ("session_created", "acme", "s1", {}),
        ("session_created", "acme", "s2", {}),
        ("recording_started", "acme", "r1", {}),
        ("recording_started", "acme", "r2", {}),
        ("recording_started", "acme", "r3", {}),
        ("recording_erased", "acme", "r1", {}),
        ("recording_expired", "acme", "r2", {}),
        ("sessions_expired", "acme", "", {"sessions": ["s1"]}),
        ("subject_erased", "acme", "p-1", {"session_ids": ["s2"], "recordings": ["r3"]}),
    )
    found = reconcile(records, stored(9))
    assert found.missing == () and (found.sessions, found.recordings) == (0, 0)


def started(recorded: bool) -> tuple[str, str, str, dict[str, object]]:
    return ("server_started", "default", "", {DELETIONS_RECORDED: True} if recorded else {})


def test_sessions_an_older_server_may_have_purged_without_a_record_are_not_held_against_it() -> (
    None
):
    """A server of a version before sessions_expired deleted sessions' records past retention
    without a record: sessions created before the first start of one that records every
    deletion (after the last start of an older one) are not compared; those after it are."""
    records = trail(
        started(False),
        ("session_created", "acme", "old", {}),
        started(True),
        ("session_created", "acme", "new", {}),
    )
    found = reconcile(records, stored(4))
    assert [m.id for m in found.missing] == ["new"] and found.sessions_from == 3
    # An older server started again (several servers upgraded one by one): until the next start
    # of a newer one, nothing is compared.
    again = trail(*[(r.action, r.org, r.subject, r.details) for r in records], started(False))
    assert reconcile(again, stored(5)).missing == ()
    assert reconcile(again, stored(5)).sessions_from == NEVER


def test_recordings_are_compared_whatever_version_started() -> None:
    """Every version recorded a recording's erasure and expiry."""
    records = trail(started(False), ("recording_started", "acme", "r1", {}))
    assert [m.id for m in reconcile(records, stored(2)).missing] == ["r1"]

"""Counts of events with no signed-in actor (issue 14) on both backends: added to, read per
organisation, purged by interval; and the in-memory counter that fills them."""

from __future__ import annotations

import pytest

from tandem.event_counts import EventCounts
from tandem.storage.base import AuditCount, Storage
from tests.grants import of_org


async def test_counts_of_one_interval_add_up_and_are_read_per_organisation(
    storage: Storage,
) -> None:
    first = AuditCount(60.0, "customer_refused", "acme", "n1", 3, "address: busy")
    await storage.add_audit_counts([first, AuditCount(60.0, "customer_refused", "", "n1", 1, "")])
    await storage.add_audit_counts([AuditCount(60.0, "customer_refused", "acme", "n1", 2, "site")])
    rows = await storage.audit_counts(0.0, of_org("acme"))
    assert [(r.action, r.count, r.detail) for r in rows] == [("customer_refused", 5, "site")]
    assert len(await storage.audit_counts()) == 2  # the operator sees every organisation's


async def test_counts_are_purged_by_their_intervals_start(storage: Storage) -> None:
    for bucket in (0.0, 60.0, 120.0):
        await storage.add_audit_counts(
            [AuditCount(bucket, "customer_token_rejected", "o", "", 1, "")]
        )
    assert await storage.purge_audit_counts(120.0) == 2
    assert [r.bucket for r in await storage.audit_counts()] == [120.0]


def test_a_flood_in_one_interval_is_one_count_written_when_the_interval_ends() -> None:
    counts = EventCounts(60.0)
    for n in range(1000):
        counts.add(600.0 + n * 0.01, "customer_refused", "acme", f"reason {n}")
    assert counts.take(659.0, "n1") == []  # the interval is still running
    [row] = counts.take(660.0, "n1")
    assert (row.bucket, row.count, row.detail) == (600.0, 1000, "reason 999")
    assert counts.take(10_000.0, "n1") == []


def test_counts_whose_write_failed_are_kept_for_the_next_try() -> None:
    counts = EventCounts(60.0)
    counts.add(0.0, "customer_origin_refused", "", "origin not allowed")
    taken = counts.take(0.0, "n1", everything=True)
    counts.put_back(taken)
    counts.add(1.0, "customer_origin_refused", "", "origin not allowed")
    [row] = counts.take(60.0, "n1")
    assert row.count == 2


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EventCounts(0.0)


async def test_a_page_of_counts_never_cuts_an_interval_in_two(storage: Storage) -> None:
    """Review of ``max_audit_page`` (10 allowed): ``GET /api/audit/counts`` pages by ``since``
    only, and a page that ended inside an interval (its kinds counted by several servers) left
    the rest of that interval where no ``since`` reaches: asked again from the interval, the
    same rows; from after it, the next. A page now ends with its last interval whole."""
    kinds = ["customer_refused", "customer_token_rejected", "origin_refused", "code_refused"]
    nodes = ["n1", "n2", "n3"]
    rows = [AuditCount(60.0, kind, "acme", node, 1, "") for kind in kinds for node in nodes]
    await storage.add_audit_counts([*rows, AuditCount(120.0, kinds[0], "acme", "n1", 1, "")])
    page = await storage.audit_counts(0.0, of_org("acme"), limit=10)
    assert sorted((r.action, r.node) for r in page) == sorted((r.action, r.node) for r in rows)
    after = await storage.audit_counts(page[-1].bucket + 1e-3, of_org("acme"), limit=10)
    assert [(r.bucket, r.action) for r in after] == [(120.0, kinds[0])]

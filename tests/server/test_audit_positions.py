"""An attack review of the audit trail between organisations: Acme's auditor reads its trail
(``GET /api/audit``, its search, the cursors) to learn how busy the default organisation is.

Before, every record carried the chain's one numbering, which every organisation shares: the
gaps between Acme's numbers were the other organisations' records, when they were written and
how many; and its hash, from which (with the record before it, when both are Acme's) a search
over the numbers finds the chain's number too. Now an auditor reads each record's position in
its own organisation's trail (1, 2, ...) and no hash: what Acme's auditor reads is the same,
record for record, whatever the default organisation did meanwhile (docs/audit.md)."""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.server.test_organisations import api


def acme_reads(server: RunningServer) -> list[list[dict[str, Any]]]:
    """What Acme's auditor reads of its trail: the whole of it, a page after a cursor, the
    search's newest page and its page before a cursor (each read is a record of its own)."""
    with api(server, "mo") as mo:
        pages = [mo.get("/api/audit", params={"limit": 1000})]
        pages.append(mo.get("/api/audit", params={"after": 3, "limit": 2}))
        pages.append(mo.get("/api/audit/search", params={"limit": 100}))
        pages.append(mo.get("/api/audit/search", params={"before": 5, "q": "a"}))
    for page in pages:
        assert page.status_code == 200, page.text
    return [page.json() for page in pages]


def default_is_busy(server: RunningServer, records: int) -> None:
    """The default organisation's auditor reads its trail ``records`` times: a record each."""
    with api(server, "aud") as aud:
        for _ in range(records):
            assert aud.get("/api/audit", params={"limit": 1}).status_code == 200


def untimed(reads: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    return [[{k: v for k, v in r.items() if k != "at"} for r in page] for page in reads]


def test_an_auditor_reads_the_same_trail_however_busy_another_organisation_is(
    server_factory: ServerFactory,
) -> None:
    seen = []
    for others in (0, 40):
        server = server_factory(seed=two_organisations)
        first = acme_reads(server)
        default_is_busy(server, others)  # between Acme's records
        seen.append(untimed([*first, *acme_reads(server)]))
    quiet, busy = seen
    assert busy == quiet
    whole = busy[4]  # the whole trail, read after the default organisation's 40 records
    assert [r["seq"] for r in whole] == list(range(1, len(whole) + 1))
    assert all(set(r) == {"seq", "action", "actor", "subject", "details"} for r in whole)
    # The cursors are Acme's positions too.
    assert [r["seq"] for r in busy[5]] == [4, 5]
    assert [r["seq"] for r in busy[6]] == list(range(len(whole) + 2, 0, -1))[:100]
    assert all(r["seq"] < 5 for r in busy[7])

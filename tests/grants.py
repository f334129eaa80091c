"""Grants for tests that read storage directly, as if a principal of ``org_id`` were authorised
(storage takes the grant :func:`tandem.access.authorize` returns, never a bare organisation)."""

from __future__ import annotations

from tandem.access import Grant


def of_org(org_id: str) -> Grant:
    return Grant(org_id, "test", "admin", "self")

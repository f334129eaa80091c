"""Grants for tests that read storage directly, as if a principal of ``org_id`` were authorised
(storage takes the grant :func:`tandem.access.authorize` returns, never a bare organisation)."""

from __future__ import annotations

from typing import Protocol, TypeVar

from tandem.access import Grant


class _OfOrg(Protocol):
    @property
    def org_id(self) -> str: ...


R = TypeVar("R", bound=_OfOrg)


def of_org(org_id: str) -> Grant:
    return Grant(org_id, "test", "admin", "self")


def owned(record: R) -> tuple[Grant, R]:
    """``(grant, record)`` for a storage method that writes an organisation's record (a user,
    site, organisation or recording): the grant of the record's own organisation."""
    return of_org(record.org_id), record

"""Placing and lifting a legal hold (``POST /api/holds``, ``/api/holds/lift``) under storage
faults. The database failing at any step answers 503 without a traceback and never leaves a
hold placed, or lifted, that the audit trail does not show; once it answers again, trying again
does it (and is recorded)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer
from tests.server.faults import FailingCall
from tests.server.test_organisations import api


@pytest.fixture
def placing(orgs_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FailingCall]:
    yield FailingCall(
        orgs_server.server.config.app.state.services.storage, monkeypatch, "_place_hold"
    )


@pytest.fixture
def lifting(orgs_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FailingCall]:
    yield FailingCall(
        orgs_server.server.config.app.state.services.storage, monkeypatch, "_lift_hold"
    )


def audited(server: RunningServer, action: str) -> int:
    """How many records of ``action`` the trail holds (a hold's record names a customer with
    no session yet only as such, so they are counted, not matched)."""
    with api(server, "aud") as aud:
        return sum(1 for r in aud.get("/api/audit").json() if r["action"] == action)


def held(admin: httpx.Client, target: str) -> bool:
    return any(h["target"] == target for h in admin.get("/api/holds").json()["holds"])


def hold(admin: httpx.Client, path: str, target: str) -> httpx.Response:
    return admin.post(path, json={"kind": "subject", "target": target, "reason": "case 9"})


def test_a_hold_is_never_placed_without_its_audit_record(
    orgs_server: RunningServer, placing: FailingCall
) -> None:
    with api(orgs_server, "ada") as ada:
        placing.arm(0)
        assert hold(ada, "/api/holds", "c-clean").status_code == 201
        steps = len(placing.calls)
        assert "append_audit" in placing.calls and steps >= 2
        for fail_at in range(1, steps + 1):
            target = f"c-fault-{fail_at}"
            before = audited(orgs_server, "legal_hold_placed")
            placing.arm(fail_at)
            failed = hold(ada, "/api/holds", target)
            where = f"failing at call {fail_at} ({placing.calls[-1]})"
            assert failed.status_code == 503, (where, failed.text)
            assert "Traceback" not in failed.text
            placing.arm(0)
            if held(ada, target):  # placed: then it was recorded
                assert audited(orgs_server, "legal_hold_placed") > before, where
            # Once the database answers, trying again holds it, recorded.
            again = hold(ada, "/api/holds", target)
            assert again.status_code in (201, 409), (where, again.text)
            assert held(ada, target), where
            assert audited(orgs_server, "legal_hold_placed") > before, where


def test_a_hold_is_never_lifted_without_its_audit_record(
    orgs_server: RunningServer, lifting: FailingCall
) -> None:
    with api(orgs_server, "ada") as ada:
        assert hold(ada, "/api/holds", "c-lift-clean").status_code == 201
        lifting.arm(0)
        assert hold(ada, "/api/holds/lift", "c-lift-clean").status_code == 200
        steps = len(lifting.calls)
        assert "append_audit" in lifting.calls and steps >= 2
        for fail_at in range(1, steps + 1):
            assert hold(ada, "/api/holds", f"c-lift-{fail_at}").status_code == 201
        for fail_at in range(1, steps + 1):
            target = f"c-lift-{fail_at}"
            before = audited(orgs_server, "legal_hold_lifted")
            lifting.arm(fail_at)
            failed = hold(ada, "/api/holds/lift", target)
            where = f"failing at call {fail_at} ({lifting.calls[-1]})"
            assert failed.status_code == 503, (where, failed.text)
            assert "Traceback" not in failed.text
            lifting.arm(0)
            if not held(ada, target):  # lifted: then it was recorded
                assert audited(orgs_server, "legal_hold_lifted") > before, where
            again = hold(ada, "/api/holds/lift", target)
            assert again.status_code in (200, 404), (where, again.text)
            assert not held(ada, target), where
            assert audited(orgs_server, "legal_hold_lifted") > before, where

"""An agent renews its own recovery codes (``POST /api/me/recovery-codes``) by proving its
password and a code of its authenticator again: the new codes are shown once, every earlier one
stops working at once, and guesses go through the sign-in's throttle. It was possible only
through an admin's reset of the whole second factor."""

from __future__ import annotations

import httpx
import pyotp
import pytest

from tandem import auth
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory
from tests.server.faults import FailingCall
from tests.server.helpers import login_cookie
from tests.test_audit import trail
from tests.test_mfa import current_code, enrol, login


@pytest.fixture
def signed_in(server_factory: ServerFactory) -> tuple[RunningServer, auth.Enrolment, httpx.Client]:
    """Bob, with an authenticator, signed in with it (its current step spent)."""
    server = server_factory(login_free_failures=3)
    enrolment = enrol(server)
    answer = login(server, "bob", current_code(server, enrolment))
    assert answer.status_code == 200
    http = httpx.Client(
        base_url=server.base,
        cookies={"tandem_agent": answer.cookies["tandem_agent"]},
        headers={"origin": server.origin},
    )
    return server, enrolment, http


def next_code(server: RunningServer, enrolment: auth.Enrolment) -> str:
    """The authenticator's code of the next step (taken: one step either side)."""
    return pyotp.TOTP(enrolment.secret).at(server.clock() + auth.TOTP_PERIOD)


def renew(http: httpx.Client, password: str, code: str) -> httpx.Response:
    return http.post("/api/me/recovery-codes", json={"password": password, "code": code})


async def test_an_agent_renews_its_recovery_codes_and_the_old_ones_stop_working_at_once(
    signed_in: tuple[RunningServer, auth.Enrolment, httpx.Client],
) -> None:
    server, enrolment, http = signed_in
    with http:
        renewed = renew(http, AGENT_PASSWORD, next_code(server, enrolment))
    assert renewed.status_code == 200, renewed.text
    codes = renewed.json()["recovery_codes"]
    assert len(codes) == 10 and not set(codes) & set(enrolment.recovery_codes)
    assert login(server, "bob", enrolment.recovery_codes[0]).status_code == 401
    assert login(server, "bob", codes[0]).status_code == 200
    records = [r for r in (await trail(server.settings.data_dir))[0] if r.actor == "bob"]
    renewals = [r for r in records if r.action == "recovery_codes_renewed"]
    assert len(renewals) == 1 and renewals[0].details["ip"] and renewals[0].org == "default"


async def test_a_wrong_password_or_code_renews_nothing_and_a_wrong_code_is_an_alert(
    signed_in: tuple[RunningServer, auth.Enrolment, httpx.Client],
) -> None:
    server, enrolment, http = signed_in
    right = next_code(server, enrolment)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    with http:
        by_password = renew(http, "not-" + AGENT_PASSWORD, right)
        assert by_password.status_code == 400
        assert "password is not right" in by_password.json()["detail"]
        by_code = renew(http, AGENT_PASSWORD, wrong)
        assert by_code.status_code == 400 and "code is not right" in by_code.json()["detail"]
        # A recovery code is no authenticator: one found on paper must not make ten more.
        assert renew(http, AGENT_PASSWORD, enrolment.recovery_codes[0]).status_code == 400
    assert login(server, "bob", enrolment.recovery_codes[1]).status_code == 200  # unchanged
    records = [r for r in (await trail(server.settings.data_dir))[0] if r.actor == "bob"]
    failed = [r for r in records if r.action == "second_factor_failed"]
    assert [r.details.get("during") for r in failed] == ["recovery_codes_renewal"] * 2
    assert not [r for r in records if r.action == "recovery_codes_renewed"]


def test_a_code_used_to_sign_in_cannot_be_replayed_to_renew(
    signed_in: tuple[RunningServer, auth.Enrolment, httpx.Client],
) -> None:
    server, enrolment, http = signed_in
    with http:
        assert renew(http, AGENT_PASSWORD, current_code(server, enrolment)).status_code == 400
        code = next_code(server, enrolment)
        assert renew(http, AGENT_PASSWORD, code).status_code == 200
        assert renew(http, AGENT_PASSWORD, code).status_code == 400  # spent by the renewal


def test_guessing_through_the_renewal_is_throttled_as_sign_ins_are(
    signed_in: tuple[RunningServer, auth.Enrolment, httpx.Client],
) -> None:
    """Someone holding bob's sign-in (a copied cookie) guesses the password or code: the
    sign-in's back-off per account counts them, and then refuses even the right ones."""
    server, enrolment, http = signed_in
    with http:
        for _ in range(server.settings.login_free_failures + 1):
            assert renew(http, "not-" + AGENT_PASSWORD, "000000").status_code == 400
        throttled = renew(http, AGENT_PASSWORD, next_code(server, enrolment))
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert login(server, "bob", next_code(server, enrolment)).status_code == 429  # shared


def test_renewing_needs_a_sign_in_and_an_authenticator(server_factory: ServerFactory) -> None:
    server = server_factory()
    anonymous = httpx.post(
        f"{server.base}/api/me/recovery-codes",
        json={"password": AGENT_PASSWORD, "code": "000000"},
        headers={"origin": server.origin},
    )
    assert anonymous.status_code == 401
    with httpx.Client(
        base_url=server.base,
        cookies={"tandem_agent": login_cookie(server)},  # alice: no authenticator
        headers={"origin": server.origin},
    ) as alice:
        none = renew(alice, AGENT_PASSWORD, "000000")
    assert none.status_code == 409 and "not set up" in none.json()["detail"]


def test_a_recovery_code_is_not_taken_as_the_proof_of_a_renewal(
    signed_in: tuple[RunningServer, auth.Enrolment, httpx.Client],
) -> None:
    """A recovery code found on paper, with the password, would make ten codes of its own:
    refused, and not spent (it still signs in)."""
    server, enrolment, http = signed_in
    with http:
        refused = renew(http, AGENT_PASSWORD, enrolment.recovery_codes[0])
    assert refused.status_code == 400
    assert login(server, "bob", enrolment.recovery_codes[0]).status_code == 200


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("referer", "https://evil.example/page"),
    ],
)
def test_a_renewal_from_another_site_is_refused(
    signed_in: tuple[RunningServer, auth.Enrolment, httpx.Client], header: str, value: str
) -> None:
    """A page of another site posting with the agent's cookie renews nothing (the same check
    as every state-changing route): the old codes still work."""
    server, enrolment, http = signed_in
    with http:
        del http.headers["origin"]
        http.headers[header] = value
        forged = renew(http, AGENT_PASSWORD, next_code(server, enrolment))
    assert forged.status_code == 403, forged.text
    assert login(server, "bob", enrolment.recovery_codes[0]).status_code == 200


def test_the_database_failing_at_any_step_of_a_renewal_leaves_the_codes_last_shown(
    signed_in: tuple[RunningServer, auth.Enrolment, httpx.Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Storage failing at each call of a renewal answers 503, and the codes the agent holds
    (the last ones it was shown) still work: never new codes nobody saw. Before, the record
    written after the new codes were stored could fail: 503, the new codes never shown, the
    old ones already dead."""
    server, enrolment, http = signed_in
    services = server.server.config.app.state.services
    faults = FailingCall(services.storage, monkeypatch, "_renew_recovery_codes")
    with http:
        faults.arm(0)
        clean = renew(http, AGENT_PASSWORD, next_code(server, enrolment))
        assert clean.status_code == 200, clean.text
        held = list(clean.json()["recovery_codes"])
        steps = len(faults.calls)
        assert steps >= 3
        for fail_at in range(1, steps + 1):
            server.clock.advance(auth.TOTP_PERIOD * 2)
            faults.arm(fail_at)
            failed = renew(http, AGENT_PASSWORD, next_code(server, enrolment))
            where = f"failing at call {fail_at} ({faults.calls[-1]})"
            assert failed.status_code == 503, (where, failed.text)
            faults.arm(0)
            assert login(server, "bob", held.pop()).status_code == 200, where
        server.clock.advance(auth.TOTP_PERIOD * 2)
        again = renew(http, AGENT_PASSWORD, next_code(server, enrolment))
        assert again.status_code == 200, again.text
    assert login(server, "bob", again.json()["recovery_codes"][0]).status_code == 200

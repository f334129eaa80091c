"""A temporary password (a new account's, an admin's reset) is good for
``temporary_password_seconds``: an account made and never claimed does not keep a usable
password for ever. Past its lifetime it is refused, saying to ask an admin for a new one, and
audited; an admin's new one works. And the admin who chose it cannot claim it from its own
signed-in browser. On a real server, through the HTTP API the console uses."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from tandem import auth
from tandem.storage.sql import SQLStorage
from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.oidc_provider import OidcProvider, use_provider
from tests.server.test_new_accounts import (
    ADMINS_CHOICE,
    ADMINS_OWN,
    NINAS_OWN,
    browser,
    create_nina,
    first_sign_in,
)
from tests.server.test_organisations import api

LIFETIME = 3600.0
NEW_ONE = "a-second-temporary-5518"


@pytest.fixture
def orgs(server_factory: ServerFactory) -> Iterator[RunningServer]:
    yield server_factory(seed=two_organisations, temporary_password_seconds=LIFETIME)


async def records_of(server: RunningServer, action: str) -> list[dict[str, object]]:
    storage = await SQLStorage.open_sqlite(server.settings.database_path)
    try:
        return [
            {"actor": r.actor, "subject": r.subject, **r.details}
            for r in await storage.audit_records()
            if r.action == action
        ]
    finally:
        await storage.close()


def listed(admin: httpx.Client) -> dict[str, object]:
    [nina] = [u for u in admin.get("/api/users").json() if u["username"] == "nina"]
    assert isinstance(nina, dict)
    return nina


def sign_in(server: RunningServer, password: str) -> httpx.Response:
    with browser(server) as nina:
        return nina.post("/api/login", json={"username": "nina", "password": password})


def test_a_temporary_password_signs_in_within_its_lifetime(orgs: RunningServer) -> None:
    create_nina(orgs)
    orgs.clock.advance(LIFETIME - 60)
    with first_sign_in(orgs, ADMINS_CHOICE, NINAS_OWN) as nina:
        assert nina.get("/api/me").json()["must_change_password"] is False


async def test_a_temporary_password_never_claimed_is_refused_after_its_lifetime(
    orgs: RunningServer,
) -> None:
    create_nina(orgs)
    with api(orgs, "ada") as ada:
        assert listed(ada)["temporary_password_expired"] is False
    orgs.clock.advance(LIFETIME + 1)
    with api(orgs, "ada") as ada:  # the Users page says so: ada gives a new one
        assert listed(ada)["temporary_password_expired"] is True
    refused = sign_in(orgs, ADMINS_CHOICE)
    assert refused.status_code == 401, refused.text
    assert "ask your administrator for a new one" in refused.json()["detail"]
    [record] = await records_of(orgs, "temporary_password_expired")
    assert record["actor"] == "nina" and record["ip"] == "127.0.0.1"
    assert record["chosen_by"] == "ada"
    # A wrong password is not told it was a temporary one that expired.
    wrong = sign_in(orgs, "not-the-password-0000")
    assert wrong.status_code == 401
    assert "administrator" not in wrong.json()["detail"]
    # The admin gives a new one: it works, for its own lifetime.
    with api(orgs, "ada") as ada:
        reset = ada.post("/api/users/nina/reset-password", json={"password": NEW_ONE})
        assert reset.is_success, reset.text
        assert listed(ada)["temporary_password_expired"] is False
    assert sign_in(orgs, ADMINS_CHOICE).status_code == 401
    with first_sign_in(orgs, NEW_ONE, NINAS_OWN) as nina:
        assert nina.get("/api/me").json()["must_change_password"] is False


async def test_a_half_sign_in_cannot_claim_a_temporary_password_past_its_lifetime(
    orgs: RunningServer,
) -> None:
    """Signed in with the temporary password just before it expired: choosing the new one
    after is refused too (the half sign-in lasts ``setup_sign_in_seconds``)."""
    create_nina(orgs)
    orgs.clock.advance(LIFETIME - 5)
    with browser(orgs) as nina:
        signed = nina.post("/api/login", json={"username": "nina", "password": ADMINS_CHOICE})
        assert signed.status_code == 200, signed.text
        orgs.clock.advance(10)
        changed = nina.post(
            "/api/me/password",
            json={"current_password": ADMINS_CHOICE, "new_password": NINAS_OWN},
        )
        assert changed.status_code == 400, changed.text
        assert "ask your administrator for a new one" in changed.json()["detail"]
    assert sign_in(orgs, NINAS_OWN).status_code == 401
    assert [r["actor"] for r in await records_of(orgs, "temporary_password_expired")] == ["nina"]


def test_a_password_the_owner_chose_does_not_expire(orgs: RunningServer) -> None:
    create_nina(orgs)
    with first_sign_in(orgs, ADMINS_CHOICE, NINAS_OWN):
        pass
    orgs.clock.advance(LIFETIME * 10)
    assert sign_in(orgs, NINAS_OWN).status_code == 200


async def test_the_admin_cannot_claim_the_temporary_password_from_its_own_sign_in(
    orgs: RunningServer,
) -> None:
    """The attack: ada, signed in, creates nina and signs in as nina in the same browser to
    choose nina's password before nina does. Refused, audited; nina's claim still works."""
    create_nina(orgs)
    with api(orgs, "ada") as ada:
        taken = ada.post("/api/login", json={"username": "nina", "password": ADMINS_CHOICE})
        assert taken.status_code == 403, taken.text
        assert "signed in as the admin who chose" in taken.json()["detail"]
        # Ada's own sign-in is untouched by the refusal.
        assert ada.get("/api/me").json()["username"] == "ada"
    [record] = await records_of(orgs, "temporary_password_refused")
    assert record["actor"] == "nina" and record["chosen_by"] == "ada"
    assert record["reason"] == "chooser_signed_in"
    with first_sign_in(orgs, ADMINS_CHOICE, NINAS_OWN):
        pass


async def test_the_claim_of_a_temporary_password_records_who_chose_it_and_when(
    orgs: RunningServer,
) -> None:
    """Ada claims it from another browser (not refused: nothing tells her browser apart);
    the claim's record says whose password was claimed, chosen when, and from where, and nina
    is shown it once an admin's reset lets her in."""
    create_nina(orgs)
    created = orgs.clock()
    orgs.clock.advance(120)
    with first_sign_in(orgs, ADMINS_CHOICE, ADMINS_OWN):  # ada, as nina, in a private window
        pass
    [claim] = await records_of(orgs, "password_changed")
    assert claim["actor"] == "nina" and claim["ip"] == "127.0.0.1"
    assert claim["temporary_chosen_by"] == "ada"
    assert abs(float(str(claim["temporary_chosen_at"])) - created) < 60
    with api(orgs, "ada") as ada:
        assert ada.post("/api/users/nina/reset-password", json={"password": NEW_ONE}).is_success
    with first_sign_in(orgs, NEW_ONE, NINAS_OWN) as nina:
        shown = nina.get("/api/me/activity").json()
    claims = [e for e in shown if e["action"] == "password_changed"]
    # Hers (of the reset's password), then ada's (of the password ada chose for her).
    assert [(c["chosen_by"], c["ip"]) for c in claims] == [("ada", "127.0.0.1")] * 2


async def test_a_temporary_password_typed_in_another_accounts_browser_is_recorded(
    orgs: RunningServer,
) -> None:
    """Another admin (or anyone signed in) signs in as nina in its own browser: not refused
    (it did not choose the password), but its sign-in record says whose browser it was."""
    create_nina(orgs)
    with api(orgs, "sam") as colleague:
        signed = colleague.post("/api/login", json={"username": "nina", "password": ADMINS_CHOICE})
        assert signed.status_code == 200, signed.text
    [record] = [r for r in await records_of(orgs, "sign_in") if r["actor"] == "nina"]
    assert record["browser_signed_in_as"] == "sam"


async def test_changing_the_password_again_and_again_does_not_hide_the_claim_from_the_owner(
    orgs: RunningServer,
) -> None:
    """Ada claims nina's temporary password in a private window, then, as nina, changes the
    password more times than the owner's list keeps of one action (each change writes its
    own ``password_changed``): ada's claim of the password she chose was pushed out of the
    list nina is shown once a reset lets her in; only "your password was changed" was left.
    A claim is counted apart from the owner's own changes."""
    create_nina(orgs)
    with first_sign_in(orgs, ADMINS_CHOICE, ADMINS_OWN) as taken:  # ada, as nina
        current = ADMINS_OWN
        for n in range(auth.MAX_ACCOUNT_ACTIVITY):
            chosen = f"admins-cover-{n:03d}-2291"
            changed = taken.post(
                "/api/me/password", json={"current_password": current, "new_password": chosen}
            )
            assert changed.status_code == 200, changed.text
            current = chosen
    with api(orgs, "ada") as ada:  # nina cannot sign in: ada gives her a new password
        assert ada.post("/api/users/nina/reset-password", json={"password": NEW_ONE}).is_success
    with first_sign_in(orgs, NEW_ONE, NINAS_OWN) as nina:
        shown = nina.get("/api/me/activity").json()
    claims = [e for e in shown if e["action"] == "password_changed" and e["chosen_by"]]
    # Hers (of the reset's password), and ada's of the password ada chose at the start.
    assert [c["chosen_by"] for c in claims] == ["ada", "ada"]
    # Still in the tamper-evident trail, as it was.
    assert (
        len([r for r in await records_of(orgs, "password_changed") if r.get("temporary_chosen_by")])
        == 2
    )


async def test_a_claim_before_a_long_absence_is_shown_with_the_sign_in_before_it(
    orgs: RunningServer,
) -> None:
    """Nina's account is made weeks before she starts. Ada claims its temporary password in a
    private window at once, and gives nina a new one only when she starts, longer than
    ``account_activity_days`` later. Nina was shown the sign-in before hers (ada's, however
    old) and the changes made to the account before it, but not ada's claim: what was done in
    the account's name then (its password chosen, an authenticator set up) is shown too."""
    create_nina(orgs)
    with first_sign_in(orgs, ADMINS_CHOICE, ADMINS_OWN):  # ada, as nina
        pass
    days = orgs.settings.account_activity_days
    orgs.clock.advance((days + 10) * 86400.0)
    with api(orgs, "ada") as ada:
        assert ada.post("/api/users/nina/reset-password", json={"password": NEW_ONE}).is_success
    with first_sign_in(orgs, NEW_ONE, NINAS_OWN) as nina:
        shown = nina.get("/api/me/activity").json()
    claims = [e for e in shown if e["action"] == "password_changed" and e["chosen_by"]]
    assert [c["chosen_by"] for c in claims] == ["ada", "ada"]  # hers, and ada's weeks ago


def test_the_claim_of_a_temporary_password_whose_chooser_was_not_kept_is_shown_as_a_claim(
    orgs: RunningServer,
) -> None:
    """A temporary password from before revision 0019 (an account an admin made and revision
    0018 made temporary, a reset): nobody kept who chose it. Ada, who typed it, claims it in a
    private window: nina was shown "your password was changed", with no address and never a
    warning, as if she had changed it herself. It is a claim, of a password someone else chose,
    said with the address it was claimed from."""
    create_nina(orgs)
    with sqlite3.connect(orgs.settings.database_path) as db:  # as revision 0019 leaves it
        db.execute("UPDATE users SET password_set_by = NULL WHERE username = 'nina'")
    with first_sign_in(orgs, ADMINS_CHOICE, ADMINS_OWN):  # ada, as nina
        pass
    with api(orgs, "ada") as ada:
        assert ada.post("/api/users/nina/reset-password", json={"password": NEW_ONE}).is_success
    with first_sign_in(orgs, NEW_ONE, NINAS_OWN) as nina:
        shown = nina.get("/api/me/activity").json()
    changes = [(e["chosen_by"], e["ip"]) for e in shown if e["action"] == "password_changed"]
    assert changes == [("ada", "127.0.0.1"), ("", "127.0.0.1")]  # hers, then ada's


def test_an_expired_temporary_password_counts_as_a_failed_sign_in(orgs: RunningServer) -> None:
    """Held: whoever guesses an expired temporary password right is told so only at the cost of
    a failure: after the free ones, the account waits as after wrong passwords."""
    create_nina(orgs)
    orgs.clock.advance(LIFETIME + 1)
    free = orgs.settings.login_free_failures
    for _ in range(free + 1):  # the free ones, and the one that starts the wait
        assert sign_in(orgs, ADMINS_CHOICE).status_code == 401
    waited = sign_in(orgs, ADMINS_CHOICE)
    assert waited.status_code == 429, waited.text


def test_the_claimer_cannot_give_the_account_back_the_temporary_password_as_its_own(
    orgs: RunningServer,
) -> None:
    """Ada claims nina's temporary password in a private window, then, as nina, changes the
    password back to the one she typed for nina: nina signed in with it as told, was never
    asked to choose her own (it was no longer temporary), and ada kept knowing nina's password,
    unnoticed from the same office (nothing in nina's list was a warning). The password a claim
    replaced is refused as a new one."""
    create_nina(orgs)
    with first_sign_in(orgs, ADMINS_CHOICE, ADMINS_OWN) as taken:  # ada, as nina
        back = taken.post(
            "/api/me/password",
            json={"current_password": ADMINS_OWN, "new_password": ADMINS_CHOICE},
        )
        assert back.status_code == 400, back.text
        assert "someone else chose" in back.json()["detail"]
    assert sign_in(orgs, ADMINS_CHOICE).status_code == 401


@pytest.fixture
def sso_orgs(server_factory: ServerFactory) -> Iterator[RunningServer]:
    """Also reaching an identity provider on loopback (the test's)."""
    yield server_factory(
        seed=two_organisations, temporary_password_seconds=LIFETIME, test_private_network=True
    )


async def test_the_owners_own_password_set_aside_by_a_binding_says_so_once_expired(
    sso_orgs: RunningServer,
) -> None:
    """Nina chose her own password; ada bound her to the provider (which made that password
    temporary: a bound account signs in through the provider), then, past the lifetime,
    unbound her. Nina signing in with her own old password was told "This temporary password
    has expired", about a password she chose herself. She is told what happened: it was set
    aside when the account was bound to single sign-on; ask for a new one. As for any expired
    temporary password, only the right password is told (a wrong one gets the usual answer),
    it is audited, and it counts as a failed sign-in."""
    create_nina(sso_orgs)
    with first_sign_in(sso_orgs, ADMINS_CHOICE, NINAS_OWN):
        pass
    provider = OidcProvider().start()
    try:
        provider.redirect_uris.add(f"{sso_orgs.base}/api/sso/callback")
        with api(sso_orgs, "ada") as ada:
            use_provider(ada, provider, {"nina": "u-7"})
    finally:
        provider.stop()
    sso_orgs.clock.advance(LIFETIME + 1)
    with api(sso_orgs, "ada") as ada:
        assert ada.delete("/api/users/nina/sso").status_code == 204
    wrong = sign_in(sso_orgs, "not-her-password-3305")
    assert wrong.status_code == 401 and "single sign-on" not in wrong.text
    refused = sign_in(sso_orgs, NINAS_OWN)
    assert refused.status_code == 401, refused.text
    detail = refused.json()["detail"]
    assert "bound to single sign-on" in detail and "ask your administrator" in detail
    assert "temporary password has expired" not in detail
    [record] = await records_of(sso_orgs, "temporary_password_expired")
    assert record["actor"] == "nina" and record["chosen_by"] is None
    free = sso_orgs.settings.login_free_failures
    for _ in range(free - 1):  # the wrong one and the right one above were two failures
        assert sign_in(sso_orgs, NINAS_OWN).status_code == 401
    waited = sign_in(sso_orgs, NINAS_OWN)
    assert waited.status_code == 429, waited.text


async def test_a_temporary_password_an_admin_chose_still_says_temporary_once_expired(
    sso_orgs: RunningServer,
) -> None:
    """The binding's wording is for the owner's own password only: an admin's reset that
    expired, on an account bound and unbound since, is still a temporary password."""
    create_nina(sso_orgs)
    with first_sign_in(sso_orgs, ADMINS_CHOICE, NINAS_OWN):
        pass
    with api(sso_orgs, "ada") as ada:
        assert ada.post("/api/users/nina/reset-password", json={"password": NEW_ONE}).is_success
    provider = OidcProvider().start()
    try:
        provider.redirect_uris.add(f"{sso_orgs.base}/api/sso/callback")
        with api(sso_orgs, "ada") as ada:
            use_provider(ada, provider, {"nina": "u-7"})
            assert ada.delete("/api/users/nina/sso").status_code == 204
    finally:
        provider.stop()
    sso_orgs.clock.advance(LIFETIME + 1)
    refused = sign_in(sso_orgs, NEW_ONE)
    assert refused.status_code == 401, refused.text
    assert refused.json()["detail"] == auth.TEMPORARY_PASSWORD_EXPIRED

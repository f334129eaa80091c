"""An account an admin creates is its owner's, not the admin's: the password the admin chose
is temporary (the first sign-in may only choose the account's own, not the same one), the
owner sets up the second factor after that, and the admin never sees its secrets. What the
admin can still do (sign in first with the password it chose, or take the account over) is
shown to the owner. On a real server, through the HTTP API the console uses."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest

from tandem.config import Settings
from tandem.directory import offline
from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.oidc_provider import OidcProvider, use_provider
from tests.server.helpers import closed_with, open_agent
from tests.server.test_organisations import api
from tests.server.test_scale_out import run_in_thread
from tests.server.test_sso import sign_in as sso_sign_in
from tests.storage.conftest import PG_DSN, create_migrated_schema, pg_connect

ADMINS_CHOICE = "admins-choice-pass-4821"
"""The password the admin types when it creates nina."""
NINAS_OWN = "her-own-phrase-9163"
ADMINS_OWN = "admins-own-takeover-7730"


@pytest.fixture(params=["sqlite", "postgres"])
def orgs(
    request: pytest.FixtureRequest, server_factory: ServerFactory, tmp_path: Path
) -> Iterator[RunningServer]:
    """The two organisations' people on a real server, on SQLite or on a fresh PostgreSQL
    schema."""
    if request.param == "sqlite":
        yield server_factory(seed=two_organisations, test_private_network=True)
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = f"{PG_DSN}?search_path={schema}"

    async def create() -> None:
        db = await pg_connect()
        try:
            await create_migrated_schema(db, schema)
        finally:
            await db.close()
        settings = Settings.load(environ={}, data_dir=tmp_path / "seed", database_url=url)
        async with offline(settings) as directory:
            await two_organisations(directory)

    async def drop() -> None:
        db = await pg_connect()
        try:
            await db.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await db.close()

    run_in_thread(create)
    try:
        server = server_factory(
            database_url=url,
            audit_key_file=tmp_path / "seed" / "audit.key",
            test_private_network=True,
        )
        try:
            yield server
        finally:
            server.stop()  # before its schema goes
    finally:
        run_in_thread(drop)


def create_nina(server: RunningServer) -> dict[str, object]:
    """Ada, the default organisation's admin, creates the agent nina through the API."""
    with api(server, "ada") as ada:
        made = ada.post(
            "/api/users", json={"username": "nina", "password": ADMINS_CHOICE, "role": "agent"}
        )
    assert made.status_code == 201, made.text
    answer: dict[str, object] = made.json()
    return answer


def browser(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.base, headers={"origin": server.origin})


@contextlib.contextmanager
def first_sign_in(server: RunningServer, password: str, chosen: str) -> Iterator[httpx.Client]:
    """Nina's first sign-in, as the console drives it: with the password she was told, and
    her own chosen when the server asks for one (and only then)."""
    with browser(server) as nina:
        signed = nina.post("/api/login", json={"username": "nina", "password": password})
        assert signed.status_code == 200, signed.text
        if signed.json()["must_change_password"]:
            changed = nina.post(
                "/api/me/password", json={"current_password": password, "new_password": chosen}
            )
            assert changed.status_code == 200, changed.text
        yield nina


def activity(client: httpx.Client) -> list[tuple[str, str]]:
    answer = client.get("/api/me/activity")
    assert answer.status_code == 200, answer.text
    return [(event["action"], event["by"]) for event in answer.json()]


def test_the_password_an_admin_chose_stops_working_once_the_agent_chose_its_own(
    orgs: RunningServer,
) -> None:
    made = create_nina(orgs)
    assert made["password_change_required"] is True
    with browser(orgs) as nina:
        signed = nina.post("/api/login", json={"username": "nina", "password": ADMINS_CHOICE})
        assert signed.status_code == 200 and signed.json()["must_change_password"] is True
        # The admin's password cannot be kept as the agent's own, as after a reset.
        kept = nina.post(
            "/api/me/password",
            json={"current_password": ADMINS_CHOICE, "new_password": ADMINS_CHOICE},
        )
        assert kept.status_code == 400 and "other than the current one" in kept.json()["detail"]
    with first_sign_in(orgs, ADMINS_CHOICE, NINAS_OWN):
        pass
    # The admin tries the password it chose: refused, however often.
    for _ in range(2):
        admins = httpx.post(
            f"{orgs.base}/api/login", json={"username": "nina", "password": ADMINS_CHOICE}
        )
        assert admins.status_code == 401, admins.text
    with api(orgs, "ada") as ada:
        [listed] = [u for u in ada.get("/api/users").json() if u["username"] == "nina"]
    assert listed["password_change_required"] is False


async def test_before_the_agents_first_sign_in_the_admins_can_only_change_the_password(
    orgs: RunningServer,
) -> None:
    """The admin signs in as nina first, with the password it chose: the sign-in can do
    nothing of hers (no second factor of the admin's set up in her account, no session, not
    her activity) but choose a password. The admin leaves it; nina's first sign-in shows her
    the sign-in before hers."""
    create_nina(orgs)
    with browser(orgs) as admin:
        signed = admin.post("/api/login", json={"username": "nina", "password": ADMINS_CHOICE})
        assert signed.status_code == 200
        me = admin.get("/api/me").json()
        assert me["must_change_password"] is True and me["needs_second_factor"] is True
        for method, path, body in (
            ("POST", "/api/mfa/setup", None),
            ("POST", "/api/mfa/confirm", {"code": "123456"}),
            ("GET", "/api/me/activity", None),
            ("POST", "/api/training/practice", None),
        ):
            refused = admin.request(method, path, json=body)
            assert refused.status_code == 403, (path, refused.text)
            assert "choose a new password first" in refused.json()["detail"], path
        socket = await open_agent(orgs, admin.cookies["tandem_agent"])
        code, reason = await closed_with(socket)
        assert code == 4403 and "password" in reason
        admins_cookie = admin.cookies["tandem_agent"]
    with first_sign_in(orgs, ADMINS_CHOICE, NINAS_OWN) as nina:
        shown = activity(nina)
        setup = nina.post("/api/mfa/setup")
        assert setup.status_code == 200, setup.text  # hers to set up, now
    # Her choice ended the admin's sign-in: it cannot wait for her to finish and go on.
    ended = httpx.get(f"{orgs.base}/api/me", cookies={"tandem_agent": admins_cookie})
    assert ended.status_code == 401
    assert shown == [
        ("password_changed", "nina"),
        ("sign_in", "nina"),  # hers
        ("sign_in", "nina"),  # the admin's, before her first: not hers
        ("user_created", "ada"),
    ]


def test_an_admin_who_takes_a_new_account_first_locks_its_owner_out_and_is_shown(
    orgs: RunningServer,
) -> None:
    """The admin chooses nina's password before she does: she cannot sign in (she notices
    and asks), and once an admin's reset lets her in, she is shown what was done."""
    create_nina(orgs)
    with first_sign_in(orgs, ADMINS_CHOICE, ADMINS_OWN):  # the admin, as nina
        pass
    refused = httpx.post(
        f"{orgs.base}/api/login", json={"username": "nina", "password": ADMINS_CHOICE}
    )
    assert refused.status_code == 401
    with api(orgs, "ada") as ada:
        assert ada.post(
            "/api/users/nina/reset-password", json={"password": ADMINS_CHOICE}
        ).is_success
    with first_sign_in(orgs, ADMINS_CHOICE, NINAS_OWN) as nina:
        shown = activity(nina)
    assert shown == [
        ("password_changed", "nina"),
        ("sign_in", "nina"),
        ("password_reset", "ada"),
        ("password_changed", "nina"),  # the admin's choice
        ("sign_in", "nina"),  # the admin's
        ("user_created", "ada"),
    ]


def test_the_admin_never_receives_the_new_accounts_second_factor(orgs: RunningServer) -> None:
    made = create_nina(orgs)
    assert set(made) == {
        "username",
        "display_name",
        "role",
        "teams",
        "second_factor",
        "mfa_exempt",
        "sso_bound",
        "password_change_required",
        "temporary_password_expired",
        "disabled",
    }
    assert made["second_factor"] is False
    with first_sign_in(orgs, ADMINS_CHOICE, NINAS_OWN) as nina:
        setup = nina.post("/api/mfa/setup").json()
        secret = setup["secret"]
        confirmed = nina.post("/api/mfa/confirm", json={"code": pyotp.TOTP(secret).at(time.time())})
        assert confirmed.status_code == 200, confirmed.text
        codes = confirmed.json()["recovery_codes"]
    with api(orgs, "ada") as ada:
        seen = "".join(
            ada.get(path).text for path in ("/api/users", "/api/users/nina", "/api/openapi.json")
        )
        [listed] = [u for u in ada.get("/api/users").json() if u["username"] == "nina"]
    assert listed["second_factor"] is True
    for shown_to_nina_only in (secret, *codes):
        assert shown_to_nina_only not in seen
    with api(orgs, "aud") as aud:
        records = aud.get("/api/audit").json()
    [created] = [r for r in records if (r["action"], r["subject"]) == ("user_created", "nina")]
    assert created["actor"] == "ada" and created["subject"] == "nina"
    assert created["details"]["password"] == "temporary"
    assert created["details"]["second_factor"] == "owner_at_first_sign_in"
    assert ADMINS_CHOICE not in str(created)


def test_an_account_an_admin_made_signs_in_through_the_provider_without_a_password(
    orgs: RunningServer,
) -> None:
    """Bound to the organisation's provider, the new account signs in through it as before:
    no password of its own to choose (the provider's sign-in is its own); the admin's password
    signs it in no more, saying to sign in through the organisation."""
    create_nina(orgs)
    provider = OidcProvider().start()
    try:
        provider.redirect_uris.add(f"{orgs.base}/api/sso/callback")
        with api(orgs, "ada") as ada:
            use_provider(ada, provider, {"nina": "u-7"})
        provider.user = {"sub": "u-7", "preferred_username": "nina"}
        with httpx.Client() as sso:
            assert sso_sign_in(orgs, sso).headers["location"] == "/console/"
            me = sso.get(f"{orgs.base}/api/me").json()
        assert me["username"] == "nina" and me["must_change_password"] is False
    finally:
        provider.stop()
    with browser(orgs) as admin:
        signed = admin.post("/api/login", json={"username": "nina", "password": ADMINS_CHOICE})
        assert signed.status_code == 401 and "identity provider" in signed.json()["detail"]


def admin_takes_the_password_and_second_factor(server: RunningServer) -> bool:
    """The admin signs in as nina with the password it typed, chooses her password and sets up
    an authenticator of its own: whether it ends up with a full sign-in of hers."""
    with browser(server) as admin:
        signed = admin.post("/api/login", json={"username": "nina", "password": ADMINS_CHOICE})
        if signed.status_code != 200:
            return False
        admin.post(
            "/api/me/password", json={"current_password": ADMINS_CHOICE, "new_password": ADMINS_OWN}
        )
        setup = admin.post("/api/mfa/setup")
        if setup.status_code != 200:
            return False
        code = pyotp.TOTP(setup.json()["secret"]).at(time.time())
        admin.post("/api/mfa/confirm", json={"code": code})
        me = admin.get("/api/me").json()
        return me["must_change_password"] is False and me["needs_second_factor"] is False


def test_an_admin_cannot_keep_a_password_and_authenticator_in_an_account_of_the_provider(
    orgs: RunningServer,
) -> None:
    """Nina signs in through the organisation's provider only, so the password the admin typed
    when it made her account was never replaced: the admin could sign in with it at any time,
    choose her password and set up its own authenticator, and have a lasting sign-in of hers
    (every record in her name) while she, never locked out, went on through the provider. A
    temporary password does not sign in an account bound to the provider: the admin must first
    remove the binding, which she is shown."""
    create_nina(orgs)
    provider = OidcProvider().start()
    try:
        provider.redirect_uris.add(f"{orgs.base}/api/sso/callback")
        with api(orgs, "ada") as ada:
            use_provider(ada, provider, {"nina": "u-7"})
        provider.user = {"sub": "u-7", "preferred_username": "nina"}
        with httpx.Client() as sso:
            assert sso_sign_in(orgs, sso).headers["location"] == "/console/"
        assert not admin_takes_the_password_and_second_factor(orgs)
        with httpx.Client(base_url=orgs.base) as sso:  # hers, as before, and nothing done
            assert sso_sign_in(orgs, sso).headers["location"] == "/console/"
            assert {action for action, _ in activity(sso)} == {
                "sign_in",
                "sso_identity_bound",
                "user_created",
            }
    finally:
        provider.stop()


def test_an_admin_cannot_create_an_account_whose_password_it_keeps(
    orgs: RunningServer,
) -> None:
    """The body has no way to say so: an unknown field is refused, nothing created; nor has an
    edit of the account (display name, role, teams) afterwards."""
    with api(orgs, "ada") as ada:
        for extra in ({"password_change_required": False}, {"enrol_now": True}):
            body = {"username": "nina", "password": ADMINS_CHOICE, "role": "agent", **extra}
            refused = ada.post("/api/users", json=body)
            assert refused.status_code == 400, refused.text
        assert "nina" not in {u["username"] for u in ada.get("/api/users").json()}
    made = create_nina(orgs)
    with api(orgs, "ada") as ada:  # nor an edit of the account afterwards
        for extra in ({"password_change_required": False}, {"password": ADMINS_OWN}):
            refused = ada.patch("/api/users/nina", json={"display_name": "Nina", **extra})
            assert refused.status_code == 400, refused.text
        [listed] = [u for u in ada.get("/api/users").json() if u["username"] == "nina"]
    assert listed == made and listed["password_change_required"] is True


async def test_the_owner_and_the_admin_choosing_the_password_at_once_leave_one_signed_in(
    orgs: RunningServer,
) -> None:
    """Nina and the admin sign in with the password the admin typed and both choose another at
    the same moment (each change a tenth of a second of hashing): the first change stored is
    the account's password and its sign-in the only one left; the other is refused, its chosen
    password signs in nowhere and its sign-in is over, so neither keeps a sign-in beside the
    other's (the loser is locked out: noticed). Before, both changes were stored, the last
    winning, and the first was often told its change was made, then found itself signed out
    with a password that signed in nowhere."""
    create_nina(orgs)
    chosen = {"nina": NINAS_OWN, "admin": ADMINS_OWN}
    clients = {
        who: httpx.AsyncClient(base_url=orgs.base, headers={"origin": orgs.origin})
        for who in chosen
    }
    try:
        for client in clients.values():
            signed = await client.post(
                "/api/login", json={"username": "nina", "password": ADMINS_CHOICE}
            )
            assert signed.status_code == 200, signed.text
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/me/password",
                    json={"current_password": ADMINS_CHOICE, "new_password": chosen[who]},
                )
                for who, client in clients.items()
            )
        )
        made = [answer for answer in answers if answer.status_code == 200]
        refused = [answer for answer in answers if answer.status_code != 200]
        assert len(made) == 1 and len(refused) == 1, [a.text for a in answers]
        # Refused at its check of the password, or before it: the winner's change had ended
        # the loser's sign-in already (a loaded machine lets the winner finish first).
        detail = refused[0].json()["detail"]
        assert "current password is not right" in detail or detail == "Sign in first.", detail
        alive = {who for who, client in clients.items() if (await client.get("/api/me")).is_success}
    finally:
        for client in clients.values():
            await client.aclose()
    assert len(alive) == 1, alive
    [winner] = alive
    for who, password in chosen.items():
        signed = httpx.post(
            f"{orgs.base}/api/login", json={"username": "nina", "password": password}
        )
        assert signed.status_code == (200 if who == winner else 401), (who, signed.text)


def test_an_admin_who_set_up_a_new_account_before_binding_it_keeps_no_sign_in(
    orgs: RunningServer,
) -> None:
    """The admin signs in first as nina, chooses her password and sets up an authenticator of
    its own, then binds her to the provider: she signs in through it, never locked out, and
    the admin kept a password sign-in of hers. Bound by an admin, the account's password is
    temporary: the admin's sign-in ends and its password and authenticator sign in no more."""
    create_nina(orgs)
    with first_sign_in(orgs, ADMINS_CHOICE, ADMINS_OWN) as admin:
        setup = admin.post("/api/mfa/setup").json()
        totp = pyotp.TOTP(setup["secret"])
        assert admin.post("/api/mfa/confirm", json={"code": totp.at(time.time())}).is_success
        assert admin.get("/api/me").json()["needs_second_factor"] is False
        provider = OidcProvider().start()
        try:
            provider.redirect_uris.add(f"{orgs.base}/api/sso/callback")
            with api(orgs, "ada") as ada:
                use_provider(ada, provider, {"nina": "u-7"})
            assert admin.get("/api/me").status_code == 401  # ended
            again = httpx.post(
                f"{orgs.base}/api/login",
                json={
                    "username": "nina",
                    "password": ADMINS_OWN,
                    "code": totp.at(time.time() + 30),
                },
            )
            assert again.status_code == 401 and "identity provider" in again.json()["detail"]
            provider.user = {"sub": "u-7", "preferred_username": "nina"}
            with httpx.Client() as sso:  # nina, through the provider
                assert sso_sign_in(orgs, sso).headers["location"] == "/console/"
        finally:
            provider.stop()

"""A sign-in whose credentials change while it is checked opens no sign-in: two server processes
on one real PostgreSQL, the attacker's sign-in held (by a row lock the test takes) after its
password check and before its sign-in is stored, while the owner changes the password, an admin
resets the password, or disables the account, on the other process. Before, the held
sign-in was stored after the change had ended every sign-in of the account, and kept working:
an attacker who knew the old password and kept a sign-in under way (four at once per address,
each a tenth of a second of password hashing) stayed signed in after the owner changed it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pyotp
import pytest

from tandem import auth
from tandem.directory import offline, operator
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory
from tests.server.helpers import login_cookie
from tests.server.test_scale_out import Cluster, run_in_thread, start_cluster
from tests.storage.conftest import pg_connect

pytestmark = pytest.mark.usefixtures("requires_redis")

NEW_PASSWORD = "a-new-password-nobody-else-knows"


@pytest.fixture
def cluster(server_factory: ServerFactory, tmp_path: Path) -> Iterator[Cluster]:
    with start_cluster(server_factory, tmp_path) as start:
        yield start


def enrolled(server: RunningServer, username: str) -> auth.Enrolment:
    """An agent account with a second factor, in the servers' shared database."""
    result: list[auth.Enrolment] = []

    async def work() -> None:
        async with offline(server.settings) as directory:
            _, enrolment = await directory.add_user(
                operator("default"),
                username,
                AGENT_PASSWORD,
                "agent",
                None,
                ("support",),
                enrol_now=True,
                change_required=False,
            )
            assert enrolment is not None
            result.append(enrolment)

    run_in_thread(work)
    return result[0]


def admin_cookie(server: RunningServer) -> str:
    """A signed-in admin of the default organisation (made by the operator)."""

    async def work() -> None:
        async with offline(server.settings) as directory:
            await directory.add_user(
                operator("default"),
                "boss",
                AGENT_PASSWORD,
                "admin",
                None,
                (),
                mfa_exempt=True,
                change_required=False,
            )

    run_in_thread(work)
    return login_cookie(server, "boss")


def schema_of(server: RunningServer) -> str:
    return str(server.settings.database_url).split("search_path=")[1]


async def held_sign_in(
    attacker_server: RunningServer,
    username: str,
    recovery_code: str,
    change: Callable[[], None],
) -> httpx.Response:
    """The attacker's sign-in (the old password and a recovery code) at ``attacker_server``,
    held after its password check, where it consumes the recovery code, by a lock on the
    account's recovery codes the test holds; ``change`` runs while it waits there. Returns
    its answer once the lock is gone."""
    db = await pg_connect(schema_of(attacker_server))
    watcher = await pg_connect()
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        transaction = db.transaction()
        await transaction.start()
        await db.execute("SELECT 1 FROM recovery_codes WHERE username = $1 FOR UPDATE", username)
        attempt = pool.submit(
            httpx.post,
            f"{attacker_server.base}/api/login",
            json={"username": username, "password": AGENT_PASSWORD, "code": recovery_code},
            timeout=60,
        )

        async def waiting() -> bool:
            """Another session waits for the test's lock (asked on a connection of its own:
            inside a transaction, PostgreSQL's activity view is a snapshot)."""
            count = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                db.get_server_pid(),
            )
            return bool(count)

        deadline = time.monotonic() + 30
        while not await waiting():  # the password was right: it consumes the code now
            assert not attempt.done(), attempt.result().text
            assert time.monotonic() < deadline, "the sign-in never reached the recovery code"
            await asyncio.sleep(0.02)
        await asyncio.to_thread(change)
        await transaction.rollback()
        return await asyncio.wrap_future(attempt)
    finally:
        pool.shutdown(wait=True)
        await db.close()
        await watcher.close()


def signed_in(server: RunningServer, response: httpx.Response) -> bool:
    cookie = response.cookies.get(auth.COOKIE_NAME)
    if cookie is None:
        return False
    me = httpx.get(f"{server.base}/api/me", cookies={auth.COOKIE_NAME: cookie})
    return me.status_code == 200


def two_step_cookie(server: RunningServer, username: str, secret: str) -> str:
    response = httpx.post(
        f"{server.base}/api/login",
        json={"username": username, "password": AGENT_PASSWORD, "code": pyotp.TOTP(secret).now()},
    )
    assert response.status_code == 200, response.text
    return response.cookies[auth.COOKIE_NAME]


async def test_a_sign_in_checked_against_the_old_password_does_not_outlive_its_change(
    cluster: Cluster,
) -> None:
    a, b = cluster(), cluster()
    enrolment = enrolled(a, "victim")
    owner = two_step_cookie(b, "victim", enrolment.secret)

    def owner_changes_the_password() -> None:
        changed = httpx.post(
            f"{b.base}/api/me/password",
            json={"current_password": AGENT_PASSWORD, "new_password": NEW_PASSWORD},
            cookies={auth.COOKIE_NAME: owner},
        )
        assert changed.status_code == 200, changed.text

    answer = await held_sign_in(
        a, "victim", enrolment.recovery_codes[0], owner_changes_the_password
    )
    assert answer.status_code == 401, answer.text
    assert not signed_in(a, answer) and not signed_in(b, answer)
    right = httpx.post(
        f"{a.base}/api/login",
        json={
            "username": "victim",
            "password": NEW_PASSWORD,
            "code": enrolment.recovery_codes[1],
        },
    )
    assert right.status_code == 200, right.text


async def test_a_sign_in_under_way_when_an_admin_resets_the_password_opens_none(
    cluster: Cluster,
) -> None:
    a, b = cluster(), cluster()
    enrolment = enrolled(a, "victim")
    boss = admin_cookie(b)

    def admin_resets_the_password() -> None:
        reset = httpx.post(
            f"{b.base}/api/users/victim/reset-password",
            json={"password": NEW_PASSWORD},
            cookies={auth.COOKIE_NAME: boss},
        )
        assert reset.status_code == 204, reset.text

    answer = await held_sign_in(a, "victim", enrolment.recovery_codes[0], admin_resets_the_password)
    assert answer.status_code == 401, answer.text
    assert not signed_in(a, answer)


async def test_a_sign_in_under_way_when_the_account_is_disabled_opens_none(
    cluster: Cluster,
) -> None:
    a, b = cluster(), cluster()
    enrolment = enrolled(a, "victim")
    boss = admin_cookie(b)

    def admin_disables_the_account() -> None:
        disabled = httpx.post(
            f"{b.base}/api/users/victim/disable", cookies={auth.COOKIE_NAME: boss}
        )
        assert disabled.status_code == 200, disabled.text

    answer = await held_sign_in(
        a, "victim", enrolment.recovery_codes[0], admin_disables_the_account
    )
    assert answer.status_code == 401, answer.text
    assert not signed_in(a, answer)
    enabled = httpx.post(f"{b.base}/api/users/victim/enable", cookies={auth.COOKIE_NAME: boss})
    assert enabled.status_code == 200, enabled.text
    assert not signed_in(a, answer)  # enabling it again does not bring that sign-in back


async def test_an_enrolment_under_way_when_the_password_changes_turns_nothing_on(
    cluster: Cluster,
) -> None:
    """The attacker, with the old password and a sign-in made with it alone (the account has
    no authenticator yet), confirms an authenticator of its own while the owner changes the
    password on the other server. Held (by a lock on the audit table the test takes) after its
    code was checked and before the authenticator is turned on, it turned it on after the
    change had ended every sign-in: the account then had the attacker's authenticator, its
    recovery codes, and a new sign-in for the attacker, and none for the owner."""
    a, b = cluster(), cluster()

    async def add_victim() -> None:
        async with offline(a.settings) as directory:
            await directory.add_user(
                operator("default"),
                "victim",
                AGENT_PASSWORD,
                "agent",
                None,
                ("support",),
                change_required=False,
            )

    run_in_thread(add_victim)
    attacker, owner = login_cookie(a, "victim"), login_cookie(b, "victim")
    setup = httpx.post(f"{a.base}/api/mfa/setup", cookies={auth.COOKIE_NAME: attacker})
    assert setup.status_code == 200, setup.text
    code = pyotp.TOTP(setup.json()["secret"]).now()
    db = await pg_connect(schema_of(a))
    watcher = await pg_connect()
    pool = concurrent.futures.ThreadPoolExecutor(2)

    async def blocked(count: int, *requests: concurrent.futures.Future[httpx.Response]) -> None:
        deadline = time.monotonic() + 30
        while (
            await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                db.get_server_pid(),
            )
            < count
        ):
            for request in requests:
                assert not request.done(), request.result().text
            assert time.monotonic() < deadline, "the requests never reached the audit trail"
            await asyncio.sleep(0.02)

    try:
        transaction = db.transaction()
        await transaction.start()
        await db.execute("LOCK TABLE audit IN EXCLUSIVE MODE")  # appends wait; reads do not
        confirm = pool.submit(
            httpx.post,
            f"{a.base}/api/mfa/confirm",
            json={"code": code},
            cookies={auth.COOKIE_NAME: attacker},
            timeout=60,
        )
        await blocked(1, confirm)  # its code was right: it records the enrolment now
        change = pool.submit(
            httpx.post,
            f"{b.base}/api/me/password",
            json={"current_password": AGENT_PASSWORD, "new_password": NEW_PASSWORD},
            cookies={auth.COOKIE_NAME: owner},
            timeout=60,
        )
        await blocked(2, confirm, change)  # the new password is stored; it records it now
        await transaction.rollback()
        confirmed = await asyncio.wrap_future(confirm)
        changed = await asyncio.wrap_future(change)
    finally:
        pool.shutdown(wait=True)
        await db.close()
        await watcher.close()
    assert changed.status_code == 200, changed.text
    assert confirmed.status_code != 200, confirmed.text
    assert not signed_in(a, confirmed)
    after = httpx.get(
        f"{b.base}/api/me", cookies={auth.COOKIE_NAME: changed.cookies[auth.COOKIE_NAME]}
    )
    assert after.status_code == 200, after.text
    assert after.json()["needs_second_factor"] is True  # no authenticator was turned on


async def test_a_code_sent_to_two_servers_at_once_signs_in_once(cluster: Cluster) -> None:
    """A TOTP code, then a recovery code, replayed on the other server at the same moment
    (a phished code used twice): one sign-in each, the other refused."""
    a, b = cluster(login_free_failures=100), cluster(login_free_failures=100)
    enrolment = enrolled(a, "victim")

    def sign_in(server: RunningServer, code: str) -> httpx.Response:
        body = {"username": "victim", "password": AGENT_PASSWORD, "code": code}
        return httpx.post(f"{server.base}/api/login", json=body, timeout=60)

    for code in (pyotp.TOTP(enrolment.secret).now(), enrolment.recovery_codes[0]):
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(sign_in, (a, b, a, b), (code,) * 4))
        assert sorted(answer.status_code for answer in answers) == [200, 401, 401, 401], code

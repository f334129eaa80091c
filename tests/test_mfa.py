"""Second factor (TOTP) at sign-in: required when enrolled, not replayable, recovery codes once."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pyotp
import pytest

from tandem import auth, crypto
from tandem.crypto import SecretBox
from tandem.storage.sql import SQLStorage
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, tandem_in_process
from tests.grants import of_org
from tests.test_audit import trail


def enrol(server: RunningServer, username: str = "bob") -> auth.Enrolment:
    """Create an account with a second factor in the running server's database."""
    result: list[auth.Enrolment] = []

    async def run() -> None:
        storage = await SQLStorage.open_sqlite(server.settings.database_path)
        try:
            _, enrolment = await auth.create_user(
                storage,
                username,
                AGENT_PASSWORD,
                "agent",
                None,
                time.time(),
                box=SecretBox(server.settings.secrets_key_path),
                grant=of_org("default"),
            )
            assert enrolment is not None
            result.append(enrolment)
        finally:
            await storage.close()

    worker = threading.Thread(target=asyncio.run, args=(run(),))
    worker.start()
    worker.join()
    return result[0]


def login(server: RunningServer, username: str, code: str | None) -> httpx.Response:
    return httpx.post(
        f"{server.base}/api/login",
        json={"username": username, "password": AGENT_PASSWORD, "code": code},
    )


@pytest.fixture
def mfa_server(server_factory: ServerFactory) -> tuple[RunningServer, auth.Enrolment]:
    server = server_factory(login_free_failures=100)
    return server, enrol(server)


def current_code(server: RunningServer, enrolment: auth.Enrolment) -> str:
    return pyotp.TOTP(enrolment.secret).at(server.clock())


def test_the_password_alone_is_not_enough(mfa_server: tuple[RunningServer, auth.Enrolment]) -> None:
    server, _ = mfa_server
    assert login(server, "bob", None).status_code == 401
    assert login(server, "bob", "000000").status_code in (401,)


def test_a_current_code_signs_in_and_cannot_be_replayed(
    mfa_server: tuple[RunningServer, auth.Enrolment],
) -> None:
    server, enrolment = mfa_server
    code = current_code(server, enrolment)
    assert login(server, "bob", code).status_code == 200
    assert login(server, "bob", code).status_code == 401, "a used code worked again"


def test_an_old_code_is_refused(mfa_server: tuple[RunningServer, auth.Enrolment]) -> None:
    server, enrolment = mfa_server
    stale = pyotp.TOTP(enrolment.secret).at(server.clock() - 120)
    assert login(server, "bob", stale).status_code == 401


def test_each_recovery_code_works_once(mfa_server: tuple[RunningServer, auth.Enrolment]) -> None:
    server, enrolment = mfa_server
    assert len(enrolment.recovery_codes) == 10
    first = enrolment.recovery_codes[0]
    assert login(server, "bob", first.upper()).status_code == 200
    assert login(server, "bob", first).status_code == 401
    assert login(server, "bob", enrolment.recovery_codes[1]).status_code == 200


async def test_a_right_password_with_wrong_codes_is_an_alert_of_its_own_and_locks_the_account(
    server_factory: ServerFactory,
) -> None:
    """Someone with bob's password (phished, reused) guesses his second factor. It was
    throttled like a password, but filed as any wrong sign-in: nothing told bob's auditors that
    his password was known. Now each try is a ``second_factor_failed`` record (an alert), a
    wrong password stays ``sign_in_failed``, the answer is the same word for word for both, and
    past the free failures even the right code waits."""
    server = server_factory(login_free_failures=3)
    enrolment = enrol(server)
    wrong_password = httpx.post(
        f"{server.base}/api/login",
        json={"username": "bob", "password": "not-" + AGENT_PASSWORD, "code": "000000"},
    )
    assert wrong_password.status_code == 401
    right = current_code(server, enrolment)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    answers = [login(server, "bob", code) for code in (wrong, None, "aaaa-bbbb-cccc")]
    assert {a.status_code for a in answers} == {401}
    assert {a.text for a in answers} == {wrong_password.text}
    assert login(server, "bob", right).status_code == 429  # the account waits
    records = [r for r in (await trail(server.settings.data_dir))[0] if r.actor == "bob"]
    assert [r.action for r in records] == ["sign_in_failed"] + ["second_factor_failed"] * 3
    assert all(r.org == "default" and r.details["ip"] for r in records)
    assert [r.details.get("code") for r in records[1:]] == ["wrong", "missing", "wrong"]


async def test_a_second_factor_the_secrets_key_does_not_open_is_a_clear_failure_not_a_crash(
    server_factory: ServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The secrets key was replaced (lost, or a back-up restored with another machine's): bob's
    seed no longer opens and his recovery codes (HMACs under the key) match nothing. An
    authenticator code was answered 500 Internal error, a recovery code as a wrong one: an
    alert that someone guesses the factor of a known password, and nothing told the operator
    why bob cannot sign in. Now both are the usual answer (the password's rightness is not
    told), recorded as a factor this server cannot check, and logged with the remedy."""
    server = server_factory(login_free_failures=100)
    another = SecretBox(tmp_path / "another-secrets.key")
    monkeypatch.setattr("tests.test_mfa.SecretBox", lambda _path: another)
    enrolment = enrol(server)
    wrong_password = httpx.post(
        f"{server.base}/api/login",
        json={"username": "bob", "password": "not-" + AGENT_PASSWORD, "code": "000000"},
    )
    answers = [
        login(server, "bob", code)
        for code in (current_code(server, enrolment), enrolment.recovery_codes[0])
    ]
    assert [a.status_code for a in answers] == [401, 401]
    assert {a.text for a in answers} == {wrong_password.text}
    records = [r for r in (await trail(server.settings.data_dir))[0] if r.actor == "bob"]
    assert [(r.action, r.details.get("code")) for r in records[1:]] == [
        ("second_factor_failed", "unreadable")
    ] * 2
    assert any("tandem user reset-mfa bob" in r.getMessage() for r in caplog.records)


def stored_recovery_digests(server: RunningServer) -> list[str]:
    with sqlite3.connect(server.settings.database_path) as db:
        return [row[0] for row in db.execute("SELECT digest FROM recovery_codes")]


def test_a_stored_recovery_code_cannot_be_checked_against_the_database_alone(
    mfa_server: tuple[RunningServer, auth.Enrolment],
) -> None:
    """Someone with a copy of the database (not the secrets key) tries recovery codes
    offline. They were stored as SHA-256 of the code alone, unsalted: each guess, at a hash's
    speed, was checked against every account's ten codes at once (60 bits each: a database of
    a thousand accounts gives one away in about 2**46 guesses). Now each is an HMAC under the
    secrets key, bound to its account: the right code's unkeyed digest matches nothing."""
    server, enrolment = mfa_server
    stored = stored_recovery_digests(server)
    assert len(stored) == 10
    for code in enrolment.recovery_codes:
        assert crypto.legacy_recovery_digest(code) not in stored
        assert crypto.secret_digest(code, "recovery") not in stored
    assert login(server, "bob", enrolment.recovery_codes[3]).status_code == 200


def test_a_recovery_code_an_older_version_stored_unkeyed_still_works_once(
    mfa_server: tuple[RunningServer, auth.Enrolment],
) -> None:
    server, _ = mfa_server
    old = "abcd-efgh-jkmn"
    with sqlite3.connect(server.settings.database_path) as db:
        db.execute(
            "INSERT INTO recovery_codes (username, digest, position) VALUES ('bob', ?, 10)",
            (crypto.legacy_recovery_digest(old),),
        )
    assert login(server, "bob", old).status_code == 200
    assert login(server, "bob", old).status_code == 401


async def test_a_sign_in_with_a_recovery_code_says_so_in_the_trail(
    mfa_server: tuple[RunningServer, auth.Enrolment],
) -> None:
    """Someone finds an old printout of bob's recovery codes and has his password. Their
    sign-in was a plain ``sign_in`` record, like bob's own with his phone, without even the
    address it came from: nothing told his auditors (or him) that a code on paper was used,
    nor from where. Now the record names the second factor, how many recovery codes are left
    and the address."""
    server, enrolment = mfa_server
    assert login(server, "bob", current_code(server, enrolment)).status_code == 200
    assert login(server, "bob", enrolment.recovery_codes[5]).status_code == 200
    sign_ins = [r for r in (await trail(server.settings.data_dir))[0] if r.action == "sign_in"]
    assert [r.details for r in sign_ins if r.actor == "bob"] == [
        {"ip": "127.0.0.1", "second_factor": "authenticator"},
        {"ip": "127.0.0.1", "second_factor": "recovery_code", "recovery_codes_left": 9},
    ]


def test_no_second_factor_secret_is_stored_in_the_clear(
    mfa_server: tuple[RunningServer, auth.Enrolment],
) -> None:
    server, enrolment = mfa_server
    raw = Path(server.settings.database_path).read_bytes()
    wal = Path(str(server.settings.database_path) + "-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert enrolment.secret.encode() not in raw
    for code in enrolment.recovery_codes:
        assert code.encode() not in raw


def stored_account(data: Path, username: str) -> tuple[bool, str | None, str | None]:
    """What the database holds of ``username``: a password to change at the next sign-in, its
    second factor's seed, one pending (both sealed)."""
    with sqlite3.connect(data / "tandem.sqlite3") as db:
        row = db.execute(
            "SELECT password_change_required, totp_secret, pending_totp FROM users"
            " WHERE username = ?",
            (username,),
        ).fetchone()
    db.close()
    return bool(row[0]), row[1], row[2]


def test_user_add_leaves_the_password_and_the_second_factor_to_the_owner(
    tmp_path: Path,
) -> None:
    """The operator types a temporary password and is shown no authenticator: the owner
    chooses a password and sets up the authenticator at the first sign-in."""
    result = tandem_in_process(
        "user",
        "add",
        "carol",
        "--data-dir",
        str(tmp_path),
        "--init",
        stdin="blue-kettle-orbit-42\n",
    )
    assert result.returncode == 0, result.stderr
    assert "temporary" in result.stdout and "two-step sign-in" in result.stdout
    assert "otpauth" not in result.stdout and "secret:" not in result.stdout
    assert not [line for line in result.stdout.splitlines() if line.strip().count("-") == 2]
    assert stored_account(tmp_path, "carol") == (True, None, None)
    [created] = [r for r in asyncio.run(trail(tmp_path))[0] if r.action == "user_created"]
    assert created.details["password"] == "temporary"
    assert created.details["second_factor"] == "owner_at_first_sign_in"


def test_user_add_own_account_prints_the_operators_own_authenticator(tmp_path: Path) -> None:
    """The server's first admin, made by its operator for itself (the bootstrap): the password
    stays, the authenticator's secret and recovery codes are printed once, and the trail says
    the creator holds them."""
    result = tandem_in_process(
        "user",
        "add",
        "carol",
        "--role",
        "admin",
        "--own-account",
        "--data-dir",
        str(tmp_path),
        "--init",
        stdin="blue-kettle-orbit-42\n",
    )
    assert result.returncode == 0, result.stderr
    assert "otpauth://totp/Tandem:carol?secret=" in result.stdout
    assert "temporary" not in result.stdout
    codes = [
        line.strip()
        for line in result.stdout.splitlines()
        if line.count("-") == 2 and len(line.strip()) == 14
    ]
    assert len(codes) == 10
    changed, seed, pending = stored_account(tmp_path, "carol")
    assert not changed and seed is not None and pending is None
    [created] = [r for r in asyncio.run(trail(tmp_path))[0] if r.action == "user_created"]
    assert created.details["password"] == "kept_by_creator"
    assert created.details["second_factor"] == "shown_to_creator"
    assert not any(code in str(created.details) for code in codes)


def test_no_mfa_is_loudly_warned(tmp_path: Path) -> None:
    result = tandem_in_process(
        "user",
        "add",
        "dave",
        "--no-mfa",
        "--data-dir",
        str(tmp_path),
        "--init",
        stdin="blue-kettle-orbit-42\n",
    )
    assert result.returncode == 0
    assert "WARNING" in result.stderr and "local demo" in result.stderr
    assert "otpauth" not in result.stdout

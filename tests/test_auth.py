"""Password rules, sign-in and sign-in sessions on the real SQLite storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyotp
import pytest

from tandem import auth, crypto
from tandem.exceptions import (
    AuthenticationError,
    ConfigError,
    UserExistsError,
    WeakPasswordError,
)
from tandem.storage.base import OrgRecord
from tandem.storage.sql import SQLStorage
from tests.grants import of_org

GOOD = "blue-kettle-orbit-42"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short1!", "too short"),
        ("password1234", "too common"),
        ("Password 1234", "too common"),
        ("alice-is-my-name", "username"),
        ("aaaaaaaaaaaaaaaa", "repetitive"),
        ("x" * 300, "too long"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, why: str) -> None:
    with pytest.raises(WeakPasswordError, match=why):
        auth.check_password_strength(password, "alice")


def test_a_passphrase_is_accepted() -> None:
    auth.check_password_strength(GOOD, "alice")


@pytest.mark.parametrize("name", ["", "Alice", "a b", "-alice", "a" * 65, "alice;drop"])
def test_bad_usernames_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        auth.validate_username(name)


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ConfigError, match="role must be one of"):
        auth.validate_role("root")


async def test_create_user_stores_only_an_argon2id_hash(storage: SQLStorage) -> None:
    await auth.create_user(storage, "alice", GOOD, "agent", None, 0.0, grant=of_org("default"))
    user = await storage.get_user("alice")
    assert user is not None and user.password_hash.startswith("$argon2id$")
    assert GOOD not in user.password_hash
    assert user.display_name == "Alice"


async def test_duplicate_user_is_refused(storage: SQLStorage) -> None:
    await auth.create_user(storage, "alice", GOOD, "agent", None, 0.0, grant=of_org("default"))
    with pytest.raises(UserExistsError):
        await auth.create_user(storage, "alice", GOOD, "agent", None, 0.0, grant=of_org("default"))


async def test_sign_in_gives_one_answer_for_wrong_password_and_unknown_user(
    storage: SQLStorage,
) -> None:
    await auth.create_user(storage, "alice", GOOD, "agent", None, 0.0, grant=of_org("default"))
    errors = []
    for username, password in (("alice", "wrong-password-123"), ("mallory", GOOD)):
        with pytest.raises(AuthenticationError) as info:
            await auth.sign_in(storage, username, password, 0.0, 60, crypto.system_entropy)
        errors.append(str(info.value))
    assert errors[0] == errors[1] == "Wrong username, password or authentication code."


class CountingHashing:
    """The server's bounded hashing as sign-in calls it, counting the argon2 checks it runs."""

    def __init__(self) -> None:
        self.checked: list[str | None] = []

    async def verify(self, client: str, password_hash: str | None, password: str) -> bool:
        self.checked.append(password_hash)
        return crypto.verify_password(password_hash, password)


async def test_an_unknown_or_malformed_name_costs_one_argon2_check_like_a_known_one(
    storage: SQLStorage,
) -> None:
    """Someone times sign-ins to tell names that have an account from names that do not. A
    name nobody has (or no account could have) runs one full argon2 check too, against a dummy
    hash of the same parameters (tests/test_crypto.py), and gets the same answer."""
    user, _ = await auth.create_user(
        storage, "alice", GOOD, "agent", None, 0.0, grant=of_org("default")
    )
    for name, expected in (("alice", user.password_hash), ("mallory", None), ("Not A Name", None)):
        hashing = CountingHashing()
        with pytest.raises(AuthenticationError):
            await auth.sign_in(
                storage,
                name,
                "wrong-password-123",
                0.0,
                60,
                crypto.system_entropy,
                hashing=hashing,  # type: ignore[arg-type]
            )
        assert hashing.checked == [expected]


class StorageCalls:
    """A storage that notes which of its methods are called, in order (a query each)."""

    def __init__(self, storage: SQLStorage) -> None:
        self.storage = storage
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.storage, name)

        async def noted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await method(*args, **kwargs)

        return noted


@pytest.mark.parametrize("organisations", [1, 2])
async def test_where_a_failed_sign_in_is_filed_costs_the_same_queries_for_any_name(
    storage: SQLStorage, organisations: int
) -> None:
    """A refused sign-in (429, answered without a password check to hide behind) looks up
    the organisation its record is filed under. A name no account has cost a query more than
    an account's name (how many organisations there are), so the time of the answer told the
    names apart; now every name costs the same queries."""
    await auth.create_user(storage, "alice", GOOD, "agent", None, 0.0, grant=of_org("default"))
    if organisations == 2:
        await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    seen: dict[str, list[str]] = {}
    for name in ("alice", "nobody-at-all"):
        spy = StorageCalls(storage)
        await auth.organisation_of(spy, name)  # type: ignore[arg-type]
        seen[name] = spy.calls
    assert seen["alice"] == seen["nobody-at-all"]
    expected = "default" if organisations == 1 else None
    assert await auth.organisation_of(storage, "nobody-at-all") == expected


@pytest.mark.parametrize(
    ("steps", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
)
def test_an_authenticator_code_is_accepted_one_step_either_side_and_no_further(
    steps: int, accepted: bool
) -> None:
    """The window a phished code stays good in: its own 30 s step and one either side (a
    phone's clock off by up to half a minute), 60 to 90 s in all; then single use."""
    secret = auth.new_enrolment("alice", lambda n: bytes(range(n))).secret  # fixed: no flake
    now = 1_800_000_015.0
    code = pyotp.TOTP(secret).at(now + steps * auth.TOTP_PERIOD)
    step = auth.check_totp(secret, code, now)
    assert (step == int(now // auth.TOTP_PERIOD) + steps) if accepted else step is None


async def test_sign_in_token_works_until_it_expires(storage: SQLStorage) -> None:
    await auth.create_user(storage, "alice", GOOD, "agent", None, 0.0, grant=of_org("default"))
    agent, token, _ = await auth.sign_in(storage, "alice", GOOD, 100.0, 60, crypto.system_entropy)
    assert agent.username == "alice"
    assert await auth.agent_for_token(storage, token, 159.0, touch_seconds=60.0) == agent
    assert await auth.agent_for_token(storage, token, 160.0, touch_seconds=60.0) is None


async def test_sign_out_revokes_the_token(storage: SQLStorage) -> None:
    await auth.create_user(storage, "alice", GOOD, "agent", None, 0.0, grant=of_org("default"))
    _, token, _ = await auth.sign_in(storage, "alice", GOOD, 0.0, 60, crypto.system_entropy)
    await auth.sign_out(storage, token)
    assert await auth.agent_for_token(storage, token, 1.0, touch_seconds=60.0) is None


async def test_storage_never_holds_the_cookie_token(storage: SQLStorage, tmp_path: Path) -> None:
    await auth.create_user(storage, "alice", GOOD, "agent", None, 0.0, grant=of_org("default"))
    _, token, _ = await auth.sign_in(storage, "alice", GOOD, 0.0, 60, crypto.system_entropy)
    await storage.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert token.encode() not in raw


async def test_a_reset_between_a_sign_in_checks_two_reads_ends_the_sign_in(
    storage: SQLStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check reads the sign-in, then the account. An admin's reset that commits in between
    (new password, change required, every sign-in ended: one transaction) must read as a
    sign-in that ended (the socket closes "signed out"), not as a live sign-in restricted to
    changing the password (it closed "role" on a busy machine)."""
    await auth.create_user(storage, "alice", GOOD, "agent", None, 0.0, grant=of_org("default"))
    _, token, _ = await auth.sign_in(storage, "alice", GOOD, 0.0, 60, crypto.system_entropy)
    read_account = storage.get_user
    resets = []

    async def reset_then_read(username: str) -> object:
        if not resets:
            resets.append(
                await storage.set_password(
                    of_org("default"), username, "temporary-hash", True, at=1.0, chosen_by=None
                )
            )
        return await read_account(username)

    monkeypatch.setattr(storage, "get_user", reset_then_read)
    assert await auth.agent_for_token(storage, token, 1.0, touch_seconds=60.0) is None
    assert resets == [1]
    # A sign-in made after the reset (with the temporary password) is live, and restricted.
    monkeypatch.setattr(storage, "get_user", read_account)
    await storage.set_password(
        of_org("default"), "alice", crypto.hash_password(GOOD), True, at=1.0, chosen_by=None
    )
    agent, token, _ = await auth.sign_in(storage, "alice", GOOD, 2.0, 60, crypto.system_entropy)
    assert await auth.agent_for_token(storage, token, 3.0, touch_seconds=60.0) == agent
    assert agent.must_change_password


@pytest.mark.parametrize("code", [None, "123456", "abcd-efgh-jkmn"])
async def test_a_right_password_costs_the_same_statements_as_a_wrong_one(
    storage: SQLStorage, tmp_path: Path, code: str | None
) -> None:
    """A right password with a wrong second factor spent the code (a statement, for a
    recovery code's two forms two) before it failed; a wrong password failed at once. The
    answer's time told a guesser with a known account's name which password was right; now a
    wrong password, and a name nobody has, run the same statements (on no account)."""
    box = crypto.SecretBox(tmp_path / "secrets.key")
    await auth.create_user(
        storage, "alice", GOOD, "agent", None, 0.0, grant=of_org("default"), box=box
    )
    seen: dict[str, list[str]] = {}
    for case, name, password in (
        ("right", "alice", GOOD),
        ("wrong", "alice", GOOD + "x"),
        ("nobody", "nobody-at-all", GOOD),
    ):
        spy = StorageCalls(storage)
        with pytest.raises(AuthenticationError):
            await auth.sign_in(
                spy,  # type: ignore[arg-type]
                name,
                password,
                1_800_000_000.0,
                60,
                crypto.system_entropy,
                code=code,
                box=box,
            )
        seen[case] = spy.calls
    assert seen["right"] == seen["wrong"] == seen["nobody"]
    user = await storage.get_user("alice")
    assert user is not None and len(user.recovery_codes) == 10  # nothing spent by a failure


@pytest.mark.parametrize("code", [None, "123456", "abcd-efgh-jkmn"])
async def test_a_wrong_password_costs_the_same_statements_for_any_kind_of_account(
    storage: SQLStorage, tmp_path: Path, code: str | None
) -> None:
    """A wrong password (with a code sent along) ran the second-factor step's statement for a
    name nobody has and for an account with an authenticator, not for an account without one
    (or one that signs in through its identity provider): the answer's time told a guesser
    which names are accounts without a second factor, the ones worth a password spray. Now
    every name costs the same statements."""
    box = crypto.SecretBox(tmp_path / "secrets.key")
    default = of_org("default")
    await auth.create_user(storage, "alice", GOOD, "agent", None, 0.0, grant=default, box=box)
    await auth.create_user(storage, "bob", GOOD, "agent", None, 0.0, grant=default)
    await auth.create_user(storage, "carol", GOOD, "agent", None, 0.0, grant=default)
    assert await storage.set_oidc_identity(default, "carol", "https://idp.example|carol")
    lost = crypto.SecretBox(tmp_path / "a-key-since-lost.key")  # dave's seed opens with no key
    await auth.create_user(storage, "dave", GOOD, "agent", None, 0.0, grant=default, box=lost)
    seen: dict[str, list[str]] = {}
    for name in ("alice", "bob", "carol", "dave", "nobody-at-all"):
        spy = StorageCalls(storage)
        with pytest.raises(AuthenticationError):
            await auth.sign_in(
                spy,  # type: ignore[arg-type]
                name,
                GOOD + "x",
                1_800_000_000.0,
                60,
                crypto.system_entropy,
                code=code,
                box=box,
            )
        seen[name] = spy.calls
    assert seen["bob"] == seen["carol"] == seen["dave"] == seen["alice"], seen
    assert seen["alice"] == seen["nobody-at-all"], seen

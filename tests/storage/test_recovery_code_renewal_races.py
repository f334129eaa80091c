"""Renewals of an account's recovery codes racing each other, or an admin's reset of its
second factor, on both backends: the account ends with one whole set of codes or none, never
a mix of two sets, nor codes beside a second factor reset away."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tandem import auth, crypto
from tandem.storage.base import Storage
from tests.grants import of_org

PASSWORD = "blue-kettle-orbit-42"


async def alice(storage: Storage, tmp_path: Path) -> tuple[crypto.SecretBox, str, str]:
    box = crypto.SecretBox(tmp_path / "secrets.key")
    await auth.create_user(
        storage, "alice", PASSWORD, "agent", None, 0.0, grant=of_org("default"), box=box
    )
    user = await storage.get_user("alice")
    assert user is not None and user.totp_secret is not None
    return box, user.totp_secret, user.password_hash


def codes(tag: str) -> tuple[str, ...]:
    return tuple(f"k2:test:{tag}{n}" for n in range(10))


async def test_two_renewals_at_once_leave_one_whole_set(storage: Storage, tmp_path: Path) -> None:
    _, seed, password_hash = await alice(storage, tmp_path)
    for n in range(8):
        first, second = codes(f"a{n}-"), codes(f"b{n}-")
        done = await asyncio.gather(
            storage.renew_recovery_codes("alice", seed, password_hash, first),
            storage.renew_recovery_codes("alice", seed, password_hash, second),
        )
        assert done == [True, True]
        left = tuple(d for u, d in await storage.recovery_code_digests() if u == "alice")
        assert left in (first, second), left


async def test_a_renewal_racing_a_reset_of_the_second_factor_leaves_no_codes_beside_it(
    storage: Storage, tmp_path: Path
) -> None:
    _, seed, password_hash = await alice(storage, tmp_path)
    _, reset = await asyncio.gather(
        storage.renew_recovery_codes("alice", seed, password_hash, codes("new-")),
        storage.set_second_factor(of_org("default"), "alice", None, ()),
    )
    assert reset
    user = await storage.get_user("alice")
    assert user is not None and user.totp_secret is None
    assert [d for u, d in await storage.recovery_code_digests() if u == "alice"] == []
    # Whichever came second, the renewal proved with the old seed changes nothing now.
    again = await storage.renew_recovery_codes("alice", seed, password_hash, codes("late-"))
    assert not again and await storage.recovery_code_digests() == []

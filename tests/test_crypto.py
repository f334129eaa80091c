"""Join codes, tokens and password hashing."""

from __future__ import annotations

import collections
import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import argon2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tandem import crypto


def counter_entropy() -> crypto.Entropy:
    counter = itertools.count()

    def entropy(nbytes: int) -> bytes:
        return next(counter).to_bytes(nbytes, "big")

    return entropy


@given(st.integers(min_value=6, max_value=18), st.binary(min_size=64, max_size=64))
def test_join_code_has_exactly_the_requested_digits(digits: int, seed: bytes) -> None:
    stream = itertools.cycle(seed)
    code = crypto.new_join_code(lambda n: bytes(next(stream) for _ in range(n)), digits)
    assert len(code) == digits and code.isdigit()


def test_join_code_keeps_leading_zeros() -> None:
    assert crypto.new_join_code(lambda n: bytes(n), 9) == "000000000"


def test_join_code_rejects_biased_draws() -> None:
    # 9 digits need 5 bytes; draws at or over the largest multiple of 10**9 must be rejected.
    draws = iter([b"\xff" * 5, (1234).to_bytes(5, "big")])
    assert crypto.new_join_code(lambda n: next(draws), 9) == "000001234"


def test_join_codes_from_the_system_csprng_are_spread_out() -> None:
    """A stuck or narrow source repeats codes and favours digits. Two of 2,000 nine-digit codes
    are the same one run in 500 (the birthday bound: 2000² / 2·10⁹); three repeats, about one
    in 10⁹: that many fail it, not one (a one-repeat bound failed about a run in 500)."""
    codes = [crypto.new_join_code(crypto.system_entropy, 9) for _ in range(2000)]
    assert len(codes) - len(set(codes)) <= 2
    first_digits = collections.Counter(code[0] for code in codes)
    assert len(first_digits) == 10 and min(first_digits.values()) > 100


def test_normalize_join_code_strips_separators() -> None:
    assert crypto.normalize_join_code(" 123-456 789 ") == "123456789"


def test_tokens_are_url_safe_and_unique() -> None:
    tokens = {crypto.new_token(crypto.system_entropy) for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) == 43 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)


def test_secret_digest_separates_purposes() -> None:
    assert crypto.secret_digest("123", "join") != crypto.secret_digest("123", "login")
    assert "123" not in crypto.secret_digest("123", "join")


@pytest.mark.usefixtures("production_password_hashing")
def test_password_hash_is_argon2id_and_verifies() -> None:
    hashed = crypto.hash_password("blue-kettle-orbit-42")
    assert hashed.startswith("$argon2id$")
    assert crypto.verify_password(hashed, "blue-kettle-orbit-42")
    assert not crypto.verify_password(hashed, "blue-kettle-orbit-43")


@pytest.mark.usefixtures("production_password_hashing")
def test_production_hashes_with_the_rfc_9106_low_memory_profile() -> None:
    """The rest of the suite hashes cheaply (tests/conftest.py); production must not."""
    profile = argon2.profiles.RFC_9106_LOW_MEMORY
    hashed = crypto.hash_password("blue-kettle-orbit-42")
    parameters = argon2.extract_parameters(hashed)
    assert parameters.type is argon2.Type.ID
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (
        profile.time_cost,
        profile.memory_cost,
        profile.parallelism,
    )
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (3, 65536, 4)
    assert argon2.extract_parameters(crypto._dummy_hash()) == parameters
    assert crypto.verify_password(hashed, "blue-kettle-orbit-42")


@pytest.mark.usefixtures("production_password_hashing")
def test_verify_without_a_hash_is_false() -> None:
    assert not crypto.verify_password(None, "tandem-dummy-password-for-timing")


def test_verify_refuses_huge_passwords() -> None:
    hashed = crypto.hash_password("blue-kettle-orbit-42")
    assert not crypto.verify_password(hashed, "x" * 100_000)


def test_verify_survives_a_corrupt_hash() -> None:
    assert not crypto.verify_password("$argon2id$garbage", "whatever-password")


def test_importing_tandem_hashes_no_password() -> None:
    """The dummy hash (for users that do not exist) is made on first use: a full-cost argon2
    hash at import made every CLI command half a second slower."""
    code = (
        "import argon2, time\n"
        "calls = []\n"
        "real = argon2.PasswordHasher.hash\n"
        "def counted(self, *a, **k):\n"
        "    calls.append(1)\n"
        "    return real(self, *a, **k)\n"
        "argon2.PasswordHasher.hash = counted\n"
        "import tandem.crypto, tandem.cli\n"
        "assert not calls, calls\n"
        "assert tandem.crypto.verify_password(None, 'x') is False\n"
        "assert calls == [1], calls\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@given(
    keys=st.integers(min_value=1, max_value=4),
    staged=st.booleans(),
    secret=st.text(max_size=200),
)
def test_a_key_ring_round_trips_and_opens_what_each_of_its_keys_sealed(
    keys: int, staged: bool, secret: str
) -> None:
    """Every ring written is read back the same, and a value sealed under any of its keys
    (current, previous, staged) opens; a digest made under any is among its digests."""
    ring = crypto.KeyRing((crypto.Fernet.generate_key(),))
    for _ in range(keys - 1):
        ring = ring.rotated()
    if staged:
        ring = ring.with_staged()
    assert crypto.KeyRing.parse(ring.text()) == ring
    for key in ring.readable:
        alone = crypto.KeyRing((key,))
        with tempfile.TemporaryDirectory() as directory:
            one = crypto.SecretBox(write_ring(Path(directory), "one.key", alone))
            whole = crypto.SecretBox(write_ring(Path(directory), "ring.key", ring))
            assert whole.open(one.seal(secret)) == secret
            assert one.digest(secret, "test") in whole.digests(secret, "test")
            assert one.named_digest(secret, "test") in whole.named_digests(secret, "test")


def write_ring(directory: Path, name: str, ring: crypto.KeyRing) -> Path:
    crypto.write_key_ring(directory / name, ring)
    return directory / name


def test_a_running_box_takes_up_a_replaced_key_file_and_logs_a_broken_one_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "secrets.key"
    box = crypto.SecretBox(key_file)
    sealed = box.seal("seed")
    crypto.write_key_ring(key_file, box.ring.rotated())
    assert box.sealed_with_current(box.reseal(sealed))  # the new current key seals now
    assert box.ring.previous
    kept = box.ring
    crypto.write_key_ring(key_file, kept)  # the same ring, a new file: taken up, unchanged
    key_file.write_text("not a key ring\n")
    for _ in range(20):
        assert box.open(sealed) == "seed"  # the ring as it was read
    refusals = [r for r in caplog.records if "cannot take up the secrets key" in r.getMessage()]
    assert len(refusals) == 1
    key_file.unlink()
    assert box.open(sealed) == "seed"
    crypto.write_key_ring(key_file, kept.retired())
    assert box.ring == kept.retired()


def test_a_key_ring_written_by_root_keeps_the_owner_of_the_file_it_replaces(
    tmp_path: Path,
) -> None:
    """``tandem secrets`` run as root: the new file is the server's account's, as the old one
    was, or the server could not read it and would keep the old ring."""
    if os.getuid() != 0:
        pytest.skip("only root can give a file to another account")
    key_file = tmp_path / "secrets.key"
    box = crypto.SecretBox(key_file)
    os.chown(key_file, 4321, 4321)
    crypto.write_key_ring(key_file, box.ring.rotated())
    assert (key_file.stat().st_uid, key_file.stat().st_gid) == (4321, 4321)
    assert key_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("planted", ["link", "file"])
def test_a_link_or_file_planted_where_the_new_key_ring_is_written_is_not_followed(
    tmp_path: Path, planted: str
) -> None:
    """Someone who may write the data directory (not the key) plants ``secrets.key.new`` as a
    link to a file of theirs, or a file of theirs open for reading, before a rotation: the new
    ring is not written through the link, nor into their file (0644), and the key file is a
    private regular file."""
    key_file = tmp_path / "secrets.key"
    box = crypto.SecretBox(key_file)
    theirs = tmp_path / "theirs"
    theirs.write_text("")
    theirs.chmod(0o644)
    beside = tmp_path / "secrets.key.new"
    if planted == "link":
        beside.symlink_to(theirs)
    else:
        beside.write_text("")
        beside.chmod(0o644)
    kept = beside.open() if planted == "file" else None
    try:
        crypto.write_key_ring(key_file, box.ring.rotated())
        assert theirs.read_text() == ""
        if kept is not None:
            assert kept.read() == ""  # the file they hold open got no key
    finally:
        if kept is not None:
            kept.close()
    assert not key_file.is_symlink() and key_file.stat().st_mode & 0o777 == 0o600
    assert len(crypto.SecretBox(key_file).ring.keys) == 2


def test_a_key_file_that_is_a_link_is_rotated_where_it_points(tmp_path: Path) -> None:
    """``secrets.key`` linked to the key kept elsewhere (another volume, away from the
    database's back-ups): the new ring replaces the file it points to, and the link stays.
    Before, the link was replaced by a regular file in the data directory (the key now beside
    the database, in its back-ups), and the file kept elsewhere still held the old ring."""
    kept = tmp_path / "vault" / "secrets.key"
    kept.parent.mkdir()
    link = tmp_path / "data" / "secrets.key"
    link.parent.mkdir()
    crypto.SecretBox(kept)
    link.symlink_to(kept)
    box = crypto.SecretBox(link)
    rotated = box.ring.rotated()
    crypto.write_key_ring(link, rotated)
    assert link.is_symlink() and crypto.KeyRing.parse(kept.read_bytes()) == rotated
    assert kept.stat().st_mode & 0o777 == 0o600
    assert box.ring == rotated  # a running server follows the link to the new file
    assert sorted(p.name for p in link.parent.iterdir()) == ["secrets.key"]

"""``tandem secrets``: staging, rotating and retiring keys of ``secrets.key`` beside a running
server, which follows the replaced file without a restart (docs/operations.md)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tandem import crypto
from tandem.exceptions import ConfigError
from tandem.storage.base import NO_ORG
from tandem.storage.sql import SQLStorage
from tests.conftest import ServerFactory, tandem_in_process
from tests.server.helpers import login_cookie
from tests.test_audit import trail
from tests.test_mfa import current_code, enrol, login


async def test_a_running_server_follows_a_rotation_and_recovery_codes_last_until_retired(
    server_factory: ServerFactory,
) -> None:
    """The seed the rotation resealed with the new key is opened by the server that read the
    old file (it takes the replaced file up: before, every sign-in with an authenticator failed
    until a restart); recovery codes keyed with the old key work until it is retired, which is
    refused while they exist, and ``--force`` names whose stop working."""
    server = server_factory(login_free_failures=100)
    enrolment = enrol(server)
    data = str(server.settings.data_dir)
    before = crypto.SecretBox(server.settings.secrets_key_path).ring.current_id
    staged = tandem_in_process("secrets", "stage", "--data-dir", data)
    assert staged.returncode == 0, staged.stderr
    rotated = tandem_in_process("secrets", "rotate", "--data-dir", data)
    assert rotated.returncode == 0, rotated.stderr
    assert "1 stored secrets sealed again" in rotated.stdout  # bob's seed
    ring = crypto.SecretBox(server.settings.secrets_key_path).ring
    assert ring.current_id != before and [crypto.key_id(k) for k in ring.previous] == [before]
    assert login(server, "bob", current_code(server, enrolment)).status_code == 200
    assert login(server, "bob", enrolment.recovery_codes[0]).status_code == 200
    status = tandem_in_process("secrets", "status", "--data-dir", data)
    assert "bob: 9 recovery codes keyed with a previous key" in status.stdout
    refused = tandem_in_process("secrets", "retire", "--data-dir", data)
    assert refused.returncode == 2 and "(bob)" in refused.stderr
    retired = tandem_in_process("secrets", "retire", "--force", "--data-dir", data)
    assert retired.returncode == 0, retired.stderr
    assert "bob: its recovery codes no longer work" in retired.stdout
    assert login(server, "bob", enrolment.recovery_codes[1]).status_code == 401
    server.clock.advance(60)  # the next step's code: the first was spent
    assert login(server, "bob", current_code(server, enrolment)).status_code == 200
    records = [r for r in (await trail(server.settings.data_dir))[0] if r.org == NO_ORG]
    assert [(r.action, r.actor) for r in records] == [
        ("secrets_key_staged", "cli"),
        ("secrets_key_rotated", "cli"),
        ("secrets_key_retired", "cli"),
    ]
    assert records[1].subject == ring.current_id and records[1].details["replaced"] == before


def test_a_key_file_that_is_no_key_ring_is_one_line(server_factory: ServerFactory) -> None:
    server = server_factory()
    data = server.settings.data_dir
    server.settings.secrets_key_path.write_text("not a key\n")
    broken = tandem_in_process("secrets", "rotate", "--data-dir", str(data))
    assert broken.returncode == 2
    assert "cannot use the secrets key" in broken.stderr and "Traceback" not in broken.stderr


@pytest.mark.parametrize("text", ["", "next \n", "# only a comment\n"])
def test_a_ring_without_a_current_key_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "secrets.key").write_text(text + "\n")
    with pytest.raises(Exception, match="cannot use the secrets key"):
        crypto.SecretBox(tmp_path / "secrets.key")


@pytest.mark.parametrize("command", ["status", "stage", "rotate", "reseal", "retire"])
def test_a_missing_key_file_is_refused_never_replaced_by_a_new_key(
    server_factory: ServerFactory, command: str
) -> None:
    """The key file gone (deleted by mistake; the running server still holds the ring it read):
    a ``tandem secrets`` command says so and writes nothing. Before, it made a new key there
    (as a first start does) and ``rotate`` went on with it: the running server took the new
    file up, and every stored secret (bob's authenticator seed) opened with no key it had."""
    server = server_factory(login_free_failures=100)
    enrolment = enrol(server)
    key_file = server.settings.secrets_key_path
    key_file.unlink()
    result = tandem_in_process("secrets", command, "--data-dir", str(server.settings.data_dir))
    assert result.returncode == 2, result.stdout
    assert f"there is no secrets key at {key_file}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not key_file.exists()
    assert login(server, "bob", current_code(server, enrolment)).status_code == 200


@pytest.mark.parametrize("staged", [False, True])
def test_a_ring_naming_one_key_twice_is_refused(tmp_path: Path, staged: bool) -> None:
    """A key written twice (a line pasted twice, or staged while already in the ring) is an
    edited file, not one ``tandem secrets`` wrote: refused in one line, not taken as a ring
    whose "previous" key is its current one (retire would then drop the current key's id from
    the codes it keeps)."""
    key = Fernet.generate_key().decode()
    other = Fernet.generate_key().decode()
    text = f"{key}\n{other}\nnext {key}\n" if staged else f"{key}\n{other}\n{key}\n"
    (tmp_path / "secrets.key").write_text(text)
    twice = f"key {crypto.key_id(key.encode())} is in the file twice"
    with pytest.raises(ConfigError, match=twice):
        crypto.SecretBox(tmp_path / "secrets.key")


async def test_secrets_sealed_by_a_running_server_during_a_rotation_and_retirement_stay_readable(
    server_factory: ServerFactory,
) -> None:
    """The server seals (an authenticator being set up, again and again) while ``rotate`` and
    then ``retire`` run beside it: each value it sealed opens with the ring left on disk, and
    the last one is the seed the server gave out (nothing sealed under a key the retirement
    dropped)."""
    server = server_factory()
    data = str(server.settings.data_dir)
    cookie = login_cookie(server)
    given: list[str] = []
    done = asyncio.Event()

    async def set_up_again_and_again() -> None:
        async with httpx.AsyncClient(
            base_url=server.base,
            cookies={"tandem_agent": cookie},
            headers={"origin": server.origin},
        ) as http:
            while not done.is_set() or len(given) < 3:
                answer = await http.post("/api/mfa/setup", json={})
                assert answer.status_code == 200, answer.text
                given.append(answer.json()["secret"])

    async def rotate_then_retire() -> None:
        try:
            for command in ("rotate", "retire"):
                result = await asyncio.to_thread(
                    tandem_in_process, "secrets", command, "--data-dir", data
                )
                assert result.returncode == 0, result.stderr
        finally:
            done.set()

    await asyncio.gather(set_up_again_and_again(), rotate_then_retire())
    box = crypto.SecretBox(server.settings.secrets_key_path)
    assert len(box.ring.keys) == 1
    storage = await SQLStorage.open_sqlite(server.settings.database_path)
    try:
        sealed = await storage.sealed_secrets()
    finally:
        await storage.close()
    assert [box.open(s.sealed) for s in sealed if s.kind == "pending_totp"] == [given[-1]]


def test_a_key_with_text_after_its_padding_is_refused(tmp_path: Path) -> None:
    """Fernet reads ``<key>x`` as ``<key>``, while digests and key ids are made from the text:
    staged beside its own key it was the same key to one and another to the other."""
    key = Fernet.generate_key().decode()
    (tmp_path / "secrets.key").write_text(f"{key}\nnext {key}x\n")
    with pytest.raises(ConfigError, match="not a key as `tandem secrets` writes one"):
        crypto.SecretBox(tmp_path / "secrets.key")


def test_a_key_made_by_hand_in_the_standard_alphabet_still_opens(tmp_path: Path) -> None:
    """A key written with + and / (Fernet takes them) is read as before; the same key written
    in both alphabets is one key twice."""
    while b"-" not in (key := Fernet.generate_key()):
        pass
    standard = key.replace(b"-", b"+").replace(b"_", b"/")
    (tmp_path / "secrets.key").write_bytes(standard)
    box = crypto.SecretBox(tmp_path / "secrets.key")
    assert Fernet(key).decrypt(box.seal("seed").encode()) == b"seed"
    (tmp_path / "secrets.key").write_bytes(standard + b"\n" + key + b"\n")
    with pytest.raises(ConfigError, match="is in the file twice"):
        crypto.SecretBox(tmp_path / "secrets.key")


_HOLDER = """
import sys
from pathlib import Path
from tandem import secrets_rotation
with secrets_rotation.exclusive(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_command_killed_holding_the_key_files_lock_leaves_the_next_one_free(
    server_factory: ServerFactory,
) -> None:
    """A ``tandem secrets`` command killed (SIGKILL) while it held ``secrets.key.lock``: the
    file stays beside the key, but the lock was the process's, not the file's, so the next
    command runs at once (no hang, no stale lock to remove by hand). While it ran, another
    was refused at once, saying why (held)."""
    server = server_factory()
    data = server.settings.data_dir
    key_file = server.settings.secrets_key_path
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(key_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        refused = tandem_in_process("secrets", "stage", "--data-dir", str(data))
        assert refused.returncode != 0
        assert "another `tandem secrets` command is running" in refused.stderr
    finally:
        holder.kill()
        holder.communicate()
    assert (data / "secrets.key.lock").exists()
    staged = tandem_in_process("secrets", "stage", "--data-dir", str(data))
    assert staged.returncode == 0, staged.stderr


def test_a_lock_file_that_cannot_be_opened_says_which_and_how_to_recover(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """``secrets.key.lock`` planted as a link (or left unreadable by a command run as another
    user): the command stops in one line that names the lock file and what to do, not only
    the system's words ("Too many levels of symbolic links")."""
    server = server_factory()
    data = server.settings.data_dir
    (data / "secrets.key.lock").symlink_to(tmp_path / "elsewhere")
    refused = tandem_in_process("secrets", "stage", "--data-dir", str(data))
    assert refused.returncode == 2, refused.stdout
    assert str(data / "secrets.key.lock") in refused.stderr
    assert "remove it if no `tandem secrets` command is running" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "elsewhere").exists()

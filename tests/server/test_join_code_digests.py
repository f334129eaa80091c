"""Join codes are stored under a keyed digest (HMAC with secrets.key): the database alone does
not give them back."""

from __future__ import annotations

import hashlib
import sqlite3

from tandem import crypto
from tests.conftest import RunningServer
from tests.server.helpers import start_session


async def test_a_stored_join_code_cannot_be_recovered_from_the_database(
    server: RunningServer,
) -> None:
    """The attack: read the join_codes table and hash every 5-digit code (0.1 s unkeyed)."""
    _customer, created = await start_session(server)
    db = sqlite3.connect(server.settings.database_path)
    try:
        stored = {row[0] for row in db.execute("SELECT code_digest FROM join_codes")}
    finally:
        db.close()
    assert len(stored) == 1
    digits = server.settings.code_digits
    unkeyed = {
        hashlib.sha256(f"tandem:join:{n:0{digits}d}".encode()).hexdigest(): n
        for n in range(10**digits)
    }
    assert not stored & unkeyed.keys()
    # With the server's key file (not in the database) the digest is the code's.
    box = crypto.SecretBox(server.settings.secrets_key_path)
    code = crypto.normalize_join_code(created["code"])
    assert stored == {box.digest(code, "join")}


async def test_a_code_and_a_resume_token_given_out_before_a_rotation_still_work(
    server: RunningServer,
) -> None:
    """The secrets key rotated (``tandem secrets rotate``) while a customer waits: the running
    server takes the new key up, and the code it gave out, keyed with the replaced key, still
    joins (it was looked up under the current key alone: "wrong code"), and the customer's
    next page still resumes with its token."""
    from tests.conftest import tandem_in_process
    from tests.server.helpers import login_cookie, open_agent, recv_json, resume_on, send

    _customer, created = await start_session(server)
    before = crypto.SecretBox(server.settings.secrets_key_path).ring.current_id
    rotated = tandem_in_process("secrets", "rotate", "--data-dir", str(server.settings.data_dir))
    assert rotated.returncode == 0, rotated.stderr
    assert crypto.SecretBox(server.settings.secrets_key_path).ring.current_id != before
    agent = await open_agent(server, login_cookie(server))
    await send(agent, type="join", code=created["code"])
    assert (await recv_json(agent))["type"] == "joined"
    _page, answer = await resume_on(server, created)
    assert answer["type"] == "resumed", answer

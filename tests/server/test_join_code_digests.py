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

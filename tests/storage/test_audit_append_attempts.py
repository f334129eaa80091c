"""An audit record's append is tried ``audit_append_attempts`` times while other servers take
the next numbers first (both backends), then fails in one line naming the attempts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tandem.config import Settings
from tandem.exceptions import StorageError
from tandem.storage import open_storage
from tandem.storage.base import Storage
from tandem.storage.sql import SQLStorage, _Violation
from tests.grants import of_org


def contended(storage: SQLStorage, taken: int) -> Callable[[], int]:
    """The storage's next ``taken`` transactions find their record's number taken, as when
    another server's record went in first; returns how many were tried."""
    real = storage._session
    tried = 0

    async def session(work: Callable[..., Any]) -> Any:
        nonlocal tried
        tried += 1
        if tried <= taken:
            raise _Violation("another server's record took the number", key_taken=True)
        return await real(work)

    storage._session = session  # type: ignore[method-assign]
    return lambda: tried


async def test_an_append_is_tried_as_often_as_the_setting_says(storage: Storage) -> None:
    assert isinstance(storage, SQLStorage)
    storage.audit_append_attempts = 10
    tries = contended(storage, taken=9)
    record = await storage.append_audit(of_org("default"), 1.0, "test", "ada", "", {})
    assert (tries(), record.seq) == (10, 1)  # the tenth attempt went in

    tries = contended(storage, taken=10)
    with pytest.raises(StorageError, match="10 attempts to append"):
        await storage.append_audit(of_org("default"), 2.0, "test", "ada", "", {})
    assert tries() == 10  # not the former 1000
    assert [r.seq for r in await storage.audit_records()] == [1]


async def test_the_setting_reaches_the_storage_the_server_opens(tmp_path: Path) -> None:
    storage = await open_storage(Settings(data_dir=tmp_path, audit_append_attempts=25))
    try:
        assert storage.audit_append_attempts == 25
    finally:
        await storage.close()

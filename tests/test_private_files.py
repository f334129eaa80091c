"""What Tandem keeps on disk is private to its account: the data directory 0700, the database
and key files 0600, new or left looser by an older version."""

from __future__ import annotations

import stat
from pathlib import Path

from tandem import crypto
from tandem.audit import load_or_create_key
from tandem.config import Settings
from tandem.storage.sql import SQLStorage


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _open_everything(data_dir: Path) -> Settings:
    settings = Settings.load(environ={}, data_dir=data_dir)
    storage = await SQLStorage.open_sqlite(settings.database_path)
    await storage.close()
    crypto.SecretBox(settings.secrets_key_path)
    load_or_create_key(settings.audit_key_path)
    return settings


async def test_a_new_data_directory_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = await _open_everything(tmp_path / "new" / "data")
    assert mode(settings.data_dir) == 0o700
    assert mode(settings.data_dir.parent) == 0o700  # created for it: private too
    for path in (settings.database_path, settings.secrets_key_path, settings.audit_key_path):
        assert mode(path) == 0o600, path
    others = [p for p in settings.data_dir.iterdir() if mode(p) & 0o077]
    assert others == []  # the write-ahead log files as well


async def test_files_an_older_version_left_readable_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = await _open_everything(data)
    data.chmod(0o755)
    for path in data.iterdir():
        path.chmod(0o644)
    await _open_everything(data)
    assert mode(data) == 0o700
    assert {p.name: mode(p) for p in data.iterdir() if mode(p) != 0o600} == {}
    assert mode(settings.database_path) == 0o600

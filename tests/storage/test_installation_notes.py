"""What a server noticed about the installation, kept for every server on the database (a
reverse proxy's header seen while no public origin was set: tandem.config.PROXY_NOTE). SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio

from tandem.storage.base import Storage


async def test_the_first_note_stays_until_it_is_forgotten(storage: Storage) -> None:
    assert await storage.installation_note("proxy_headers_seen") is None
    await asyncio.gather(  # servers noting at once: one note, no error
        storage.note_installation("proxy_headers_seen", "x-forwarded-for", 10.0),
        storage.note_installation("proxy_headers_seen", "forwarded", 11.0),
    )
    first = await storage.installation_note("proxy_headers_seen")
    assert first in ("x-forwarded-for", "forwarded")
    await storage.note_installation("proxy_headers_seen", "x-real-ip", 12.0)
    assert await storage.installation_note("proxy_headers_seen") == first
    assert await storage.installation_note("another") is None
    assert await storage.forget_installation_note("proxy_headers_seen") is True
    assert await storage.installation_note("proxy_headers_seen") is None
    assert await storage.forget_installation_note("proxy_headers_seen") is False

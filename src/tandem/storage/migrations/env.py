"""For developers' ``alembic`` commands (``alembic revision --autogenerate``): the database is
``TANDEM_DATABASE_URL`` as SQLAlchemy understands it, e.g. ``sqlite+aiosqlite:///data/x.sqlite3``
or ``postgresql+asyncpg://...``. Tandem itself runs revisions through
:func:`tandem.storage.migrations.upgrade`, not this file."""

from __future__ import annotations

import asyncio
import os

import sqlalchemy as sa
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from tandem.storage.schema import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(os.environ["TANDEM_DATABASE_URL"])
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


asyncio.run(_main())

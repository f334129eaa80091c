"""An unproved origin blocks no one: ``sites.origin`` is no longer unique across the server.

Before, the first organisation to register an origin held it for good, proved or not, so any
tenant could keep a company's website from ever being registered by that company (a squat).
Now each organisation has at most one site per origin (``sites_org_id_origin_key``), and only
one *verified* site holds an origin server-wide (the partial unique index
``sites_verified_origin``). Every existing origin is already unique, so both hold for the rows
there are: nothing is rewritten.

SQLite cannot drop a column's UNIQUE, so its table is built again and the rows copied. Dropping
the old table deletes its teams' links (``site_teams``, ON DELETE CASCADE with foreign keys
on, which cannot be turned off inside this transaction): they are read first and written back.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SQLITE_SITES = """
CREATE TABLE sites_0010 (
    site_id TEXT NOT NULL PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    origin TEXT NOT NULL,
    name TEXT NOT NULL,
    policy TEXT,
    token_key TEXT,
    require_token INTEGER DEFAULT 0 NOT NULL,
    verified INTEGER DEFAULT 1 NOT NULL,
    CONSTRAINT sites_org_id_origin_key UNIQUE (org_id, origin)
)
"""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        links = bind.exec_driver_sql("SELECT site_id, org_id, team FROM site_teams").fetchall()
        bind.exec_driver_sql(SQLITE_SITES)
        bind.exec_driver_sql(
            "INSERT INTO sites_0010"
            " (site_id, org_id, origin, name, policy, token_key, require_token, verified)"
            " SELECT site_id, org_id, origin, name, policy, token_key, require_token, verified"
            " FROM sites"
        )
        bind.exec_driver_sql("DROP TABLE sites")
        bind.exec_driver_sql("ALTER TABLE sites_0010 RENAME TO sites")
        bind.exec_driver_sql("DELETE FROM site_teams")  # what the cascade left, if anything
        if links:
            bind.execute(
                sa.text("INSERT INTO site_teams (site_id, org_id, team) VALUES (:s, :o, :t)"),
                [{"s": site, "o": org, "t": team} for site, org, team in links],
            )
        verified = "verified = 1"
    else:
        # The old constraint's name is PostgreSQL's choice for a column's UNIQUE.
        for constraint in sa.inspect(bind).get_unique_constraints("sites"):
            if constraint["column_names"] == ["origin"] and constraint["name"]:
                op.drop_constraint(constraint["name"], "sites", type_="unique")
        op.create_unique_constraint("sites_org_id_origin_key", "sites", ["org_id", "origin"])
        verified = "verified = true"
    condition: dict[str, Any] = {f"{bind.dialect.name}_where": sa.text(verified)}
    op.create_index("sites_verified_origin", "sites", ["origin"], unique=True, **condition)


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")

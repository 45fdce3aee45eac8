"""Apply the ordered SQL files of ``migrations/`` once each, safely from concurrent processes."""

from __future__ import annotations

from importlib import resources

import psycopg

from irt_pipeline.storage._tx import committed_transaction

# Key of the transaction-level advisory lock that serialises migrations within one database.
_LOCK_KEY = 0x1A75C4E

_TRACKING_TABLE = """
CREATE TABLE IF NOT EXISTS irt_schema_migrations (
  name TEXT PRIMARY KEY,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Bookkeeping only: no API role may read or change it (Supabase exposes public tables).
ALTER TABLE irt_schema_migrations ENABLE ROW LEVEL SECURITY;
"""


def migration_files() -> list[tuple[str, str]]:
    """(name, SQL) of every migration, in the order of their names."""
    folder = resources.files(__package__) / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name, f.read_text(encoding="utf-8")) for f in files]


def pending_migrations(conn: psycopg.Connection) -> list[str]:
    """Names of the migrations not applied to `conn`'s database yet, in order (all of them on a
    database never migrated). Read-only: it creates nothing."""
    names = [name for name, _ in migration_files()]
    if conn.execute("SELECT to_regclass('irt_schema_migrations')").fetchone()[0] is None:
        return names
    done = {name for (name,) in conn.execute("SELECT name FROM irt_schema_migrations")}
    return [name for name in names if name not in done]


def apply_migrations(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations not applied yet, in one committed transaction; return their names.

    A transaction-level advisory lock makes a second process wait and then find nothing to do.
    """
    applied: list[str] = []
    with committed_transaction(conn):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(_TRACKING_TABLE)
        done = {name for (name,) in conn.execute("SELECT name FROM irt_schema_migrations")}
        for name, text in migration_files():
            if name in done:
                continue
            conn.execute(text)
            conn.execute("INSERT INTO irt_schema_migrations (name) VALUES (%s)", (name,))
            applied.append(name)
    return applied

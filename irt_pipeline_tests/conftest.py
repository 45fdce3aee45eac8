"""Shared fixtures: a real PostgreSQL for every database test.

By default the embedded server (PyPI `pgserver`) is started once per test session in a
temporary folder; with IRT_TEST_DATABASE_URL set, that server is used instead (CI runs the
database tests a second time against the system PostgreSQL this way). Each test that asks for
`database_url` gets a fresh database with every migration applied, dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from irt_pipeline.signals import restore_default_interrupts

# A suite started in the background (nohup, `&`) inherits SIGINT ignored; see irt_pipeline/signals.py.
restore_default_interrupts()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """Connection URL of a PostgreSQL server on which tests may create databases."""
    url = os.environ.get("IRT_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    # Not under pytest's basetemp: every pytest session that starts makes /tmp/pytest-of-<user>
    # private again (chmod go-rwx), and the server runs as another OS user when we are root
    # (pgserver's "pgserver" user), so a concurrent session could cut initdb off its folder.
    folder = Path(tempfile.mkdtemp(prefix="irt-test-pg-"))
    server = pgserver.get_server(folder / "pgdata", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def fresh_database(pg_server_url: str, *, prepare: str | None = None, migrate: bool = True) -> Iterator[str]:
    """Create a database on the server, run the SQL `prepare` in it (if any), apply every
    migration (if `migrate`); drop it on exit."""
    from irt_pipeline.storage import apply_migrations

    name = f"irt_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(pg_server_url, dbname=name)
    try:
        if prepare is not None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(prepare)
        if migrate:
            with psycopg.connect(url) as conn:
                apply_migrations(conn)
        yield url
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def database_url(pg_server_url: str) -> Iterator[str]:
    """URL of a fresh, fully migrated database, dropped when the test ends."""
    with fresh_database(pg_server_url) as url:
        yield url

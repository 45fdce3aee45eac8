"""Fixtures of the storage tests (the shared `database_url` fixture gives a migrated database)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from irt_pipeline import storage


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A storage connection (autocommit) to a fresh migrated database."""
    with storage.connect(database_url) as connection:
        yield connection


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """URL of a fresh database without any migration, dropped when the test ends."""
    name = f"irt_test_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(pg_server_url, dbname=name)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

"""The storage subcommands of the `irt-pipeline` CLI; each returns the process exit code."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel

from irt_pipeline.errors import IrtError, ItemNotFoundError, StudentNotFoundError
from irt_pipeline.models import Envelope
from irt_pipeline.storage.abilities import latest_ability
from irt_pipeline.storage.connection import connect
from irt_pipeline.storage.demo import seed_demo
from irt_pipeline.storage.embedded import database_url
from irt_pipeline.storage.migrate import apply_migrations
from irt_pipeline.storage.parameters import latest_parameters


def describe_database(url: str) -> str:
    """The connection target for humans: user, host or socket folder, port, database; no password."""
    params = conninfo_to_dict(url)
    user = params.get("user", "")
    password = ":***" if params.get("password") else ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{password}@{params.get('host', '')}{port}/{params.get('dbname', '')}"


def migrate_command() -> int:
    """Apply the pending migrations and say which ones, and where."""
    url = database_url()
    with connect(url) as conn:
        applied = apply_migrations(conn)
    print(f"database: {describe_database(url)}")
    print("applied: " + ", ".join(applied) if applied else "applied: nothing (schema up to date)")
    return 0


def seed_demo_command(*, bank: str, n_items: int, n_students: int, seed: int) -> int:
    """Migrate if needed, seed the demo bank and print its summary."""
    url = database_url()
    try:
        with connect(url) as conn:
            apply_migrations(conn)
            summary = seed_demo(conn, item_bank=bank, n_items=n_items, n_students=n_students, seed=seed)
    except IrtError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"database: {describe_database(url)}")
    print(json.dumps(summary, indent=2))
    return 0


def _print_lookup(lookup: Callable[[psycopg.Connection], BaseModel | None],
                  not_found: Callable[[str], IrtError]) -> int:
    """Print {"data": <the row>, "error": null} and return 0, or {"data": null, "error": {...}}
    (also on stderr) and return 1; `not_found(hint)` builds the error."""
    hint = ""
    try:
        with connect() as conn:
            row = lookup(conn)
    except psycopg.errors.UndefinedTable:
        row, hint = None, " (the database lacks the calibration tables: run `irt-pipeline migrate`)"
    if row is None:
        error = not_found(hint)
        print(Envelope.failure(error).model_dump_json(indent=2))
        print(error, file=sys.stderr)
        return 1
    print(Envelope.ok(row).model_dump_json(indent=2))
    return 0


def parameters_command(item_id: str) -> int:
    """The brief's envelope of the item's latest parameters (IrtItemParameters), exit 0, or
    ITEM_NOT_FOUND, exit 1."""
    return _print_lookup(lambda conn: latest_parameters(conn, item_id),
                         lambda hint: ItemNotFoundError(f"no calibrated parameters for item {item_id}{hint}"))


def ability_command(student_id: str, *, bank: str) -> int:
    """The envelope of the student's latest ability on the bank (IrtStudentAbility), exit 0, or
    STUDENT_NOT_FOUND, exit 1."""
    return _print_lookup(
        lambda conn: latest_ability(conn, student_id, bank),
        lambda hint: StudentNotFoundError(f"no ability of student {student_id} on item bank {bank!r}{hint}"))

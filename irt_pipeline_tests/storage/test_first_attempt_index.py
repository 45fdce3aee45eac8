"""Migration 0009: the indexes of the calibration read, on this project's tables only."""

from __future__ import annotations

import psycopg
import pytest

from irt_pipeline import storage
from irt_pipeline.storage import attempts as attempts_module
from irt_pipeline.storage.first_attempts import _FIRST_ATTEMPTS
from irt_pipeline.storage.migrate import migration_files
from irt_pipeline_tests.storage.helpers import add_attempt, add_items, new_id

pytestmark = pytest.mark.db

FIRST = "(student_id, item_id, attempted_at, id) INCLUDE (correct)"
BY_ITEM = "(item_id, id)"


def index_definitions(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'student_attempts'"))


def test_the_read_indexes_replace_those_of_0002_and_apply_again_without_change(conn):
    indexes = index_definitions(conn)
    assert indexes["idx_student_attempts_first"].endswith(FIRST)
    assert indexes["idx_student_attempts_item_id"].endswith(BY_ITEM)
    oids = conn.execute("SELECT array_agg(indexrelid ORDER BY indexrelid) FROM pg_index"
                        " WHERE indrelid = 'student_attempts'::regclass").fetchone()
    (sql,) = [text for name, text in migration_files() if name.startswith("0009_")]
    conn.execute(sql)
    assert conn.execute("SELECT array_agg(indexrelid ORDER BY indexrelid) FROM pg_index"
                        " WHERE indrelid = 'student_attempts'::regclass").fetchone() == oids


def test_the_first_attempt_read_needs_no_sort_and_the_watermark_no_join(conn):
    items = sorted(add_items(conn, "bank-a", 3))
    ids = [add_attempt(conn, new_id(), item, True, minutes=k) for k, item in enumerate(items * 5)]
    conn.execute("ANALYZE student_attempts")
    with conn.transaction():
        conn.execute("SET LOCAL enable_sort = off")      # a Sort node would then cost 1e10: only if unavoidable
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN " + _FIRST_ATTEMPTS.replace("%(items)s", "%s"), (items,)))
    assert "Sort" not in plan and "idx_student_attempts_first" in plan, plan
    assert attempts_module.data_watermark(conn, "bank-a", items)[0] == max(ids)
    conn.execute("DROP INDEX idx_student_attempts_item_id")  # a table without it: the join, same value
    assert attempts_module.data_watermark(conn, "bank-a", items)[0] == max(ids)
    assert attempts_module.data_watermark(conn, "nothing", [])[0] == 0


def test_the_exam_import_storys_table_keeps_its_indexes(empty_database_url):
    notices: list[str] = []
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("""
            CREATE TABLE items (id UUID PRIMARY KEY, item_bank TEXT NOT NULL DEFAULT 'default');
            CREATE TABLE student_attempts (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                student_id UUID NOT NULL, item_id UUID NOT NULL REFERENCES items(id),
                correct BOOLEAN NOT NULL, attempted_at TIMESTAMPTZ NOT NULL DEFAULT now());
            CREATE INDEX f69_attempts_item ON student_attempts (item_id);
        """)
        storage.apply_migrations(conn)
        assert set(index_definitions(conn)) == {"student_attempts_pkey", "f69_attempts_item"}
    assert any("0009" in n and "CREATE INDEX CONCURRENTLY" in n and BY_ITEM in n for n in notices), notices

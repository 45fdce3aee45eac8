"""Every relation in public is closed to Supabase's API roles (issue 12, section 1).

On a database set up like a Supabase project (the roles anon, authenticated and service_role,
auth.role(), and Supabase's default privileges: ``ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT
ALL ON TABLES, SEQUENCES, FUNCTIONS TO anon, authenticated, service_role``), after migrating and
filling every table with rows, `holes()` lists whatever anon or authenticated (with their own JWT
claims, or a forged service_role claim) can

* read: a query that returns a row, or a SELECT privilege that no RLS stands behind (a table
  without RLS, a view that runs as its owner, a sequence's value);
* write: a DELETE or UPDATE that reaches a row, an INSERT/UPDATE/DELETE privilege that no RLS
  stands behind or that a policy for the role lets through, or TRIGGER (code on others' writes);
* truncate (RLS does not apply to TRUNCATE);
* advance: nextval/setval on a sequence.

An RLS-filtered empty result is not a hole; the test checks that such a table does hold rows.
Run with the upstream tables created by migration 0002, with them created first by the
exam-import story (safe or open: its tables are left exactly as they are), and on a database
migrated by the release before the fix, which migration 0007 repairs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from irt_pipeline import storage
from irt_pipeline.storage.migrate import _TRACKING_TABLE, migration_files
from irt_pipeline_tests.conftest import fresh_database
from irt_pipeline_tests.storage.helpers import add_attempt, add_items, parameter_frame, publish

pytestmark = pytest.mark.db

API_ROLES = ("anon", "authenticated")
CLAIMS = {
    "anon": [{"role": "anon"}, {"role": "service_role"}],
    "authenticated": [{"role": "authenticated", "sub": str(uuid.uuid4())}, {"role": "service_role"}],
}
UPSTREAM = {"items", "student_attempts", "student_attempts_id_seq"}
MARKER = "irt-pipeline: created by migration 0002"

SUPABASE_LIKE = """
DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', role_name);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
      END;
    END IF;
  END LOOP;
END
$$;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $fn$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text
$fn$;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
"""

# The exam-import story's tables, created before this project migrates. Safe: RLS with a policy of
# its own, authenticated may query (RLS shows it nothing), nothing else for the API roles.
EXAM_IMPORT_TABLES = """
CREATE TABLE items (id UUID PRIMARY KEY, item_bank TEXT NOT NULL DEFAULT 'default',
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now(), stem TEXT);
CREATE TABLE student_attempts (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    student_id UUID NOT NULL, item_id UUID NOT NULL REFERENCES items(id),
    correct BOOLEAN NOT NULL, attempted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    exam_import_id UUID NULL);
COMMENT ON TABLE items IS 'exam-import story (F-69)';
"""
EXAM_IMPORT_SAFE = EXAM_IMPORT_TABLES + """
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE student_attempts ENABLE ROW LEVEL SECURITY;
CREATE POLICY "F-69 service" ON items FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY "F-69 service" ON student_attempts FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE ALL ON items, student_attempts, student_attempts_id_seq FROM anon, authenticated;
GRANT SELECT ON items, student_attempts TO authenticated;
"""

# Migration 0002 as released before issue 12 (for databases migrated by that release).
OLD_0002 = """
CREATE TABLE IF NOT EXISTS items (
  id UUID PRIMARY KEY,
  item_bank TEXT NOT NULL DEFAULT 'default',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_items_item_bank ON items(item_bank);
CREATE TABLE IF NOT EXISTS student_attempts (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  student_id UUID NOT NULL,
  item_id UUID NOT NULL REFERENCES items(id),
  correct BOOLEAN NOT NULL,
  attempted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  exam_import_id UUID NULL
);
CREATE INDEX IF NOT EXISTS idx_student_attempts_item_id ON student_attempts(item_id);
CREATE INDEX IF NOT EXISTS idx_student_attempts_first
  ON student_attempts(student_id, item_id, attempted_at, id);
"""


# -- set-up -----------------------------------------------------------------------------------


@pytest.fixture
def supabase_like_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, unmigrated database set up like a Supabase project."""
    with fresh_database(pg_server_url, prepare=SUPABASE_LIKE, migrate=False) as url:
        yield url


def migrate_with_the_old_release(conn: psycopg.Connection) -> None:
    """What `irt-pipeline migrate` of the release before the fix did: 0001-0006, old 0002."""
    with conn.transaction():
        conn.execute(_TRACKING_TABLE)
        for name, text in migration_files():
            if name >= "0007":
                break
            conn.execute(OLD_0002 if name.startswith("0002_") else text)
            conn.execute("INSERT INTO irt_schema_migrations (name) VALUES (%s)", (name,))


def fill(conn: psycopg.Connection) -> None:
    """A row in every table: items, attempts, a published run, an ability, the demo bank."""
    items = add_items(conn, "bank-sec", 3)
    for k, item in enumerate(items):
        add_attempt(conn, str(uuid.uuid4()), item, k % 2 == 0)
    run_id = storage.start_run(conn, item_bank="bank-sec", config={"model": "3pl"}, dagster_run_id=None)
    # the brief's columns only: the schema may be the old release's (no 0008 columns yet)
    conn.execute(
        "INSERT INTO irt_item_parameters (item_id, calibration_run_id, a, b, c, a_se, b_se, c_se, infit_mnsq,"
        " outfit_mnsq, is_flagged, response_count) SELECT id, %s, 1.2, 0, 0.2, 0.1, 0.08, 0.03, 1.01, 0.97,"
        " false, 150 FROM items WHERE item_bank = 'bank-sec'", (run_id,))
    conn.execute(
        "INSERT INTO irt_student_abilities (student_id, item_bank, calibration_run_id, theta, theta_se,"
        " response_count) VALUES (%s, 'bank-sec', %s, 0.1, 0.4, 3)", (str(uuid.uuid4()), run_id))
    storage.seed_demo(conn, item_bank="demo-sec", n_items=80, n_students=200, seed=7)


def upstream_state(conn: psycopg.Connection) -> dict:
    """What the exam-import story decides about its tables: grants, RLS, comment, policies, indexes."""
    rows = conn.execute(
        "SELECT c.relname, c.relacl::text, c.relrowsecurity, obj_description(c.oid, 'pg_class'),"
        " (SELECT array_agg(polname ORDER BY polname) FROM pg_policy WHERE polrelid = c.oid),"
        " (SELECT array_agg(i.indexrelid::regclass::text ORDER BY 1) FROM pg_index i WHERE i.indrelid = c.oid)"
        " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s)",
        (sorted(UPSTREAM),)).fetchall()
    return {row[0]: row[1:] for row in rows}


def markers(conn: psycopg.Connection) -> dict[str, bool]:
    return {name: (obj_description or "").startswith(MARKER) for name, obj_description in conn.execute(
        "SELECT relname, obj_description(oid, 'pg_class') FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace AND relname IN ('items', 'student_attempts')")}


# -- the check --------------------------------------------------------------------------------


def _as_role(conn: psycopg.Connection, role: str, claims: dict, statement: sql.Composable):
    """One statement as `role` with `claims`, rolled back: ("rows", n), ("count", n) or ("refused", state)."""
    outcome = None
    try:
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
            cur = conn.execute(statement)
            outcome = ("rows", len(cur.fetchall())) if cur.description else ("count", cur.rowcount)
            raise psycopg.Rollback()
    except psycopg.Error as exc:
        outcome = ("refused", exc.sqlstate)
    return outcome


def holes(conn: psycopg.Connection) -> list[str]:
    """What anon and authenticated can do to the relations in schema public (see the module doc)."""
    found: list[str] = []
    relations = conn.execute(
        "SELECT c.oid, c.relname, c.relkind, c.relrowsecurity,"
        " coalesce('security_invoker=true' = ANY(c.reloptions), false),"
        " (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
        "  AND NOT a.attisdropped AND a.attidentity = '' AND a.attgenerated = '' ORDER BY a.attnum LIMIT 1)"
        " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
        " AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') ORDER BY c.relname").fetchall()
    assert {r[1] for r in relations} >= {"irt_calibration_runs", "irt_item_parameters", "irt_item_parameters_latest",
                                         "irt_schema_migrations", "demo_item_truth"} | UPSTREAM
    for oid, name, kind, rls, invoker, column in relations:
        target = sql.Identifier("public", name)
        (owner_rows,) = conn.execute(
            sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT 1) s").format(target)).fetchone()
        for role in API_ROLES:
            def privileged(*privileges: str) -> list[str]:
                check = "has_sequence_privilege" if kind == "S" else "has_table_privilege"
                return [p for p in privileges
                        if conn.execute(f"SELECT {check}(%s, %s::oid, %s)", (role, oid, p)).fetchone()[0]]

            def policy_lets(command: str) -> bool:
                return conn.execute(
                    "SELECT EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = %s AND p.polpermissive"
                    " AND p.polcmd IN (%s, '*') AND (0 = ANY(p.polroles) OR"
                    " (SELECT oid FROM pg_roles WHERE rolname = %s) = ANY(p.polroles)))",
                    (oid, command, role)).fetchone()[0]

            def hole(what: str) -> None:
                found.append(f"{role} can {what} public.{name}")

            if kind == "S":
                if privileged("SELECT"):
                    hole("read (SELECT privilege)")
                if privileged("USAGE", "UPDATE"):
                    hole("advance (USAGE/UPDATE privilege)")
                for claims in CLAIMS[role]:
                    if _as_role(conn, role, claims, sql.SQL("SELECT nextval({})").format(
                            sql.Literal(f"public.{name}")))[0] != "refused":
                        hole(f"advance (nextval with claims {claims})")
                continue

            if privileged("SELECT"):
                if kind in ("r", "p", "m", "f") and not rls:
                    hole("read (SELECT privilege, no RLS)")
                elif kind == "v" and not invoker:
                    hole("read (SELECT privilege on a view that runs as its owner)")
                elif not owner_rows:
                    hole("read (SELECT privilege behind RLS, but the table is empty: cannot tell)")
            for command, code in (("INSERT", "a"), ("UPDATE", "w"), ("DELETE", "d")):
                if privileged(command) and (kind == "v" or not rls or policy_lets(code)):
                    hole(f"write ({command} privilege, {'a view' if kind == 'v' else 'not stopped by RLS'})")
            if privileged("TRIGGER"):
                hole("write (TRIGGER privilege)")
            if privileged("TRUNCATE"):
                hole("truncate (TRUNCATE privilege)")

            statements = {
                "read": sql.SQL("SELECT * FROM {} LIMIT 1").format(target),
                "delete from": sql.SQL("DELETE FROM {}").format(target),
                "truncate": sql.SQL("TRUNCATE {} CASCADE").format(target),
            }
            if column:
                statements["update"] = sql.SQL("UPDATE {} SET {} = {}").format(
                    target, sql.Identifier(column), sql.Identifier(column))
            for claims in CLAIMS[role]:
                for what, statement in statements.items():
                    outcome = _as_role(conn, role, claims, statement)
                    if (outcome[0] in ("rows", "count") and outcome[1] > 0) or (what == "truncate" and outcome[0] != "refused"):
                        hole(f"{what} (done with claims {claims}: {outcome})")
    return sorted(set(found))


def relations_of(found: list[str]) -> set[str]:
    return {line.rsplit("public.", 1)[1] for line in found}


# -- the scenarios ----------------------------------------------------------------------------


def test_upstream_tables_created_by_0002_are_closed(supabase_like_url):
    with storage.connect(supabase_like_url) as conn:
        storage.apply_migrations(conn)
        fill(conn)
        assert markers(conn) == {"items": True, "student_attempts": True}
        assert holes(conn) == []


def test_exam_import_tables_created_first_are_left_as_they_are(supabase_like_url):
    """The exam-import story's own tables (its RLS, policy and grants): nothing of this project
    opens anything, and its tables keep their grants, RLS, comment, policies and indexes (no
    index is built on them inside the migration, issue 12 section 3)."""
    with storage.connect(supabase_like_url) as conn:
        conn.execute(EXAM_IMPORT_SAFE)
        before = upstream_state(conn)
        storage.apply_migrations(conn)
        assert upstream_state(conn) == before
        fill(conn)
        assert markers(conn) == {"items": False, "student_attempts": False}
        assert holes(conn) == []


def test_open_exam_import_tables_are_not_touched_and_are_the_only_holes(supabase_like_url):
    """Tables the exam-import story left open stay its business (never altered by 0002 or 0007);
    the check finds them, and nothing of this project's."""
    with storage.connect(supabase_like_url) as conn:
        conn.execute(EXAM_IMPORT_TABLES)
        before = upstream_state(conn)
        storage.apply_migrations(conn)
        assert upstream_state(conn) == before
        fill(conn)
        found = holes(conn)
        assert relations_of(found) == UPSTREAM, found


def test_0007_repairs_a_database_migrated_by_the_old_release(supabase_like_url):
    with storage.connect(supabase_like_url) as conn:
        migrate_with_the_old_release(conn)
        fill(conn)
        found = holes(conn)
        # what the issue reproduced: anon reads, deletes, truncates and advances the sequence
        for line in ("anon can read (SELECT privilege, no RLS) public.items",
                     "anon can truncate (TRUNCATE privilege) public.student_attempts",
                     "anon can advance (USAGE/UPDATE privilege) public.student_attempts_id_seq"):
            assert line in found
        assert any(line.startswith("anon can delete from (done") and line.endswith("student_attempts")
                   for line in found)
        assert relations_of(found) == UPSTREAM, found
        assert markers(conn) == {"items": False, "student_attempts": False}

        assert storage.apply_migrations(conn) == [name for name, _ in migration_files() if name >= "0007"]
        assert markers(conn) == {"items": True, "student_attempts": True}
        assert holes(conn) == []


def test_0007_leaves_exam_import_tables_alone_on_a_database_migrated_by_the_old_release(supabase_like_url):
    """Old release over the exam-import story's open tables: 0002 only added indexes then, and
    0007 does not mistake the tables for its own."""
    with storage.connect(supabase_like_url) as conn:
        conn.execute(EXAM_IMPORT_TABLES)
        migrate_with_the_old_release(conn)
        before = upstream_state(conn)
        assert storage.apply_migrations(conn) == [name for name, _ in migration_files() if name >= "0007"]
        assert upstream_state(conn) == before
        assert markers(conn) == {"items": False, "student_attempts": False}


# -- ON DELETE RESTRICT -----------------------------------------------------------------------


def test_an_item_with_calibration_history_cannot_be_deleted(conn):
    """irt_item_parameters.item_id is ON DELETE RESTRICT (0007): deleting a calibrated item no
    longer erases its history; an item never calibrated is deleted as before."""
    items = add_items(conn, "bank-del", 3)
    run_id = storage.start_run(conn, item_bank="bank-del", config={"model": "3pl"}, dagster_run_id=None)
    publish(conn, run_id, parameter_frame(items[:2]))
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="irt_item_parameters_item_id_fkey"):
        conn.execute("DELETE FROM items WHERE id = %s", (items[0],))
    assert conn.execute("SELECT count(*) FROM irt_item_parameters").fetchone() == (2,)
    assert conn.execute("DELETE FROM items WHERE id = %s", (items[2],)).rowcount == 1
    definition = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'irt_item_parameters_item_id_fkey'"
    ).fetchone()
    assert definition == ("FOREIGN KEY (item_id) REFERENCES items(id) ON DELETE RESTRICT",)

"""Migrations: idempotent, safe concurrently, Supabase-compatible, the brief's schema exactly."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path

import pgserver
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from irt_pipeline import storage
from irt_pipeline.storage.migrate import migration_files
from irt_pipeline_tests.storage.helpers import add_items, parameter_frame, publish

pytestmark = pytest.mark.db

MIGRATIONS = ["0001_supabase_compat.sql", "0002_upstream_tables.sql", "0003_irt_calibration.sql",
              "0004_run_leases_and_api_roles.sql", "0005_bank_scale.sql", "0006_run_data_watermark.sql",
              "0007_upstream_table_safety.sql", "0008_item_diagnostics.sql", "0009_first_attempt_index.sql"]


def test_migration_files_are_ordered_sql():
    assert [name for name, _ in migration_files()] == MIGRATIONS


def test_second_apply_applies_nothing(conn):
    assert storage.apply_migrations(conn) == []
    assert [r[0] for r in conn.execute("SELECT name FROM irt_schema_migrations ORDER BY name")] == MIGRATIONS


def test_the_files_since_0004_apply_again_without_change(conn):
    """0005-0008 are idempotent themselves (IF NOT EXISTS, guarded policies, CREATE OR REPLACE),
    so a half-applied or hand-applied database (Supabase's SQL editor) can run them again."""
    def schema():
        return conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY 1, 2").fetchall() + conn.execute(
            "SELECT tablename, policyname, roles::text FROM pg_policies ORDER BY 1, 2").fetchall()

    before = schema()
    for name, text in migration_files():
        if name >= "0005":
            conn.execute(text)
    conn.commit()
    assert schema() == before


def test_applies_where_supabase_and_the_exam_import_already_are(empty_database_url):
    """Existing items, student_attempts and auth.role() are used as they are, never replaced."""
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("""
            CREATE SCHEMA auth;
            CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'supabase-owned' $$;
            CREATE TABLE items (id UUID PRIMARY KEY, item_bank TEXT NOT NULL DEFAULT 'default',
                                created_at TIMESTAMPTZ NOT NULL DEFAULT now(), stem TEXT);
            CREATE TABLE student_attempts (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                student_id UUID NOT NULL, item_id UUID NOT NULL REFERENCES items(id),
                correct BOOLEAN NOT NULL, attempted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                exam_import_id UUID NULL, source TEXT);
        """)
        assert storage.apply_migrations(conn) == MIGRATIONS
        assert conn.execute("SELECT auth.role()").fetchone() == ("supabase-owned",)
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'items'")}
        assert "stem" in columns
        assert storage.apply_migrations(conn) == []


def test_concurrent_applies_migrate_once(empty_database_url):
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def migrate() -> None:
        try:
            with psycopg.connect(empty_database_url) as conn:
                barrier.wait()
                results.append(storage.apply_migrations(conn))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results, key=len) == [[], [], MIGRATIONS]


def test_supabase_roles_exist_with_schema_usage(conn):
    roles = {r[0] for r in conn.execute(
        "SELECT rolname FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role')")}
    assert roles == {"anon", "authenticated", "service_role"}
    for role in roles:
        for schema in ("public", "auth"):
            assert conn.execute("SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, schema)).fetchone()[0]


def test_auth_role_reads_both_jwt_settings(conn):
    def role(**settings: str) -> str | None:
        with conn.transaction():
            for name, value in settings.items():
                conn.execute("SELECT set_config(%s, %s, true)", (name.replace("_", "."), value))
            return conn.execute("SELECT auth.role()").fetchone()[0]

    assert role() is None
    assert role(request_jwt_claim_role="service_role") == "service_role"
    assert role(request_jwt_claims=json.dumps({"role": "authenticated", "sub": "x"})) == "authenticated"
    # The old single-claim setting wins, as in Supabase's definition.
    assert role(request_jwt_claim_role="anon", request_jwt_claims='{"role": "service_role"}') == "anon"


BRIEF_RUN_COLUMNS = {
    "id": ("uuid", "NO", "gen_random_uuid()"),
    "started_at": ("timestamp with time zone", "NO", "now()"),
    "completed_at": ("timestamp with time zone", "YES", None),
    "status": ("text", "NO", "'running'::text"),
    "items_calibrated": ("integer", "NO", "0"),
    "items_skipped": ("integer", "NO", "0"),
    "items_flagged": ("integer", "NO", "0"),
    "convergence_achieved": ("boolean", "NO", "false"),
    "iterations_used": ("integer", "NO", "0"),
    "elapsed_seconds": ("double precision", "NO", "0"),
    "config": ("jsonb", "NO", None),
    "created_at": ("timestamp with time zone", "NO", "now()"),
    # additions of this project
    "item_bank": ("text", "NO", "'default'::text"),
    "dagster_run_id": ("text", "YES", None),
    "error": ("text", "YES", None),
    "lease_handed_over_at": ("timestamp with time zone", "YES", None),  # 0004: run leases
    # 0005: the bank scale
    "linking_method": ("text", "YES", None),
    "scale_run_id": ("uuid", "YES", None),
    "theta_mean": ("double precision", "YES", None),
    "theta_sd": ("double precision", "YES", None),
    "anchor_items": ("integer", "NO", "0"),
    "drifted_items": ("integer", "NO", "0"),
    # 0006: the data a run read
    "data_watermark": ("bigint", "YES", None),
    "data_read_at": ("timestamp with time zone", "YES", None),
}
BRIEF_PARAMETER_COLUMNS = {
    "id": ("uuid", "NO", "gen_random_uuid()"),
    "item_id": ("uuid", "NO", None),
    "calibration_run_id": ("uuid", "NO", None),
    **{name: ("double precision", "NO", None) for name in ("a", "b", "c", "infit_mnsq", "outfit_mnsq")},
    # 0008: NULL where a parameter is at its bound or the information is singular
    **{name: ("double precision", "YES", None) for name in ("a_se", "b_se", "c_se")},
    "is_flagged": ("boolean", "NO", "false"),
    "response_count": ("integer", "NO", None),
    "calibrated_at": ("timestamp with time zone", "NO", "now()"),
    "created_at": ("timestamp with time zone", "NO", "now()"),
    # 0005: anchors and drift
    "is_anchor": ("boolean", "NO", "false"),
    "is_drifted": ("boolean", "NO", "false"),
    "b_drift": ("double precision", "YES", None),
    # 0008: item diagnostics
    "flag_reasons": ("ARRAY", "NO", "'{}'::text[]"),
    "item_status": ("text", "NO", "'ok'::text"),
    **{name: ("double precision", "YES", None)
       for name in ("item_rest_corr", "q1_statistic", "q1_df", "q1_p_value", "q1_p_adjusted")},
}


@pytest.mark.parametrize("table, expected", [
    ("irt_calibration_runs", BRIEF_RUN_COLUMNS),
    ("irt_item_parameters", BRIEF_PARAMETER_COLUMNS),
])
def test_tables_have_the_brief_columns(conn, table, expected):
    rows = conn.execute(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s", (table,)).fetchall()
    assert {name: (kind, nullable, default) for name, kind, nullable, default in rows} == expected


def test_indexes_constraints_and_rls(conn):
    indexes = dict(conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN"
        " ('irt_item_parameters', 'irt_calibration_runs')").fetchall())
    assert "UNIQUE INDEX idx_irt_params_item_run ON public.irt_item_parameters USING btree (item_id, calibration_run_id)" \
        in indexes["idx_irt_params_item_run"]
    assert "WHERE (is_flagged = true)" in indexes["idx_irt_params_flagged"]
    assert "(item_id, calibrated_at DESC)" in indexes["idx_irt_params_item_calibrated"]
    assert {"idx_irt_params_item_id", "idx_irt_params_calibration_run", "idx_irt_runs_status"} <= set(indexes)
    assert indexes["idx_irt_runs_one_running_per_bank"].endswith(
        "USING btree (item_bank) WHERE (status = 'running'::text)")
    assert "UNIQUE" in indexes["idx_irt_runs_one_running_per_bank"]

    checks = [r[0] for r in conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'irt_calibration_runs'::regclass"
        " AND contype = 'c'")]
    assert sorted(checks) == [
        "CHECK ((linking_method = ANY (ARRAY['initial'::text, 'stocking_lord'::text, 'none'::text])))",
        "CHECK ((status = ANY (ARRAY['running'::text, 'completed'::text, 'failed'::text])))",
    ]
    cascades = {r[0] for r in conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'irt_item_parameters'::regclass"
        " AND contype = 'f'")}
    # item_id: RESTRICT since 0007 (deleting an item must not erase its calibration history)
    assert cascades == {"FOREIGN KEY (item_id) REFERENCES items(id) ON DELETE RESTRICT",
                        "FOREIGN KEY (calibration_run_id) REFERENCES irt_calibration_runs(id) ON DELETE CASCADE"}

    rls = dict(conn.execute(
        "SELECT relname, relrowsecurity FROM pg_class WHERE relname IN ('irt_calibration_runs',"
        " 'irt_item_parameters', 'irt_student_abilities', 'irt_schema_migrations')").fetchall())
    assert rls == {"irt_calibration_runs": True, "irt_item_parameters": True, "irt_student_abilities": True,
                   "irt_schema_migrations": True}
    policies = conn.execute("SELECT tablename, policyname, cmd, qual, with_check, roles FROM pg_policies"
                            " ORDER BY tablename").fetchall()
    assert [(t, p, cmd, roles) for t, p, cmd, _, _, roles in policies] == [
        ("irt_calibration_runs", "Service role full access on irt_calibration_runs", "ALL", ["service_role"]),
        ("irt_item_parameters", "Service role full access on irt_item_parameters", "ALL", ["service_role"]),
        ("irt_student_abilities", "Service role full access on irt_student_abilities", "ALL", ["service_role"]),
    ]
    assert all(q == w == "(auth.role() = 'service_role'::text)" for _, _, _, q, w, _ in policies)


def test_view_is_security_invoker_and_granted_to_service_role_only(conn):
    for view in ("irt_item_parameters_latest", "irt_student_abilities_latest"):
        options = conn.execute("SELECT reloptions FROM pg_class WHERE relname = %s", (view,)).fetchone()
        assert options == (["security_invoker=true"],)
    for relation in ("irt_calibration_runs", "irt_item_parameters", "irt_item_parameters_latest",
                     "irt_student_abilities", "irt_student_abilities_latest"):
        privilege = "SELECT" if relation.endswith("latest") else "INSERT"
        grants = conn.execute(
            "SELECT has_table_privilege('service_role', %(r)s, %(p)s), has_table_privilege('anon', %(r)s, %(p)s),"
            " has_table_privilege('authenticated', %(r)s, %(p)s)", {"r": relation, "p": privilege}).fetchone()
        assert grants == (True, False, False)


def test_rls_shows_rows_only_to_the_service_role_claim(conn):
    """As Supabase's `authenticated` role (even with table grants, as Supabase's defaults give),
    neither the tables nor the security-invoker view show a row unless the JWT role is service_role."""
    items = add_items(conn, "bank-rls", 2)
    run_id = storage.start_run(conn, item_bank="bank-rls", config={"model": "3pl"}, dagster_run_id=None)
    publish(conn, run_id, parameter_frame(items))

    def visible(claims: str | None) -> tuple[int, int, int]:
        with conn.transaction():  # rolled back: the grant and the role switch do not outlive it
            conn.execute("GRANT SELECT ON irt_calibration_runs, irt_item_parameters,"
                         " irt_item_parameters_latest TO authenticated")
            conn.execute("SET LOCAL ROLE authenticated")
            if claims:
                conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (claims,))
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM irt_calibration_runs), (SELECT count(*) FROM irt_item_parameters),"
                " (SELECT count(*) FROM irt_item_parameters_latest)").fetchone()
            raise psycopg.Rollback()
        return counts

    assert visible(None) == (0, 0, 0)
    assert visible('{"role": "authenticated"}') == (0, 0, 0)
    # 0004 binds the policies to the service_role database role: a forged claim shows nothing
    # (irt_pipeline_tests/reliability/test_rls.py covers every role, relation and command)
    assert visible('{"role": "service_role"}') == (0, 0, 0)


def test_databases_migrating_at_once_on_a_fresh_server_share_the_roles():
    """Roles are global: on a server without them, concurrent migrations of several databases all
    try to create them; the losers get unique_violation (not duplicate_object) and must go on."""
    folder = Path(tempfile.mkdtemp(prefix="irt-test-roles-"))  # outside pytest's basetemp, as in conftest
    server = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        base = server.get_uri()
        names = [f"race_{k}" for k in range(4)]
        with psycopg.connect(base, autocommit=True) as admin:
            for name in names:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        barrier = threading.Barrier(len(names))
        errors: list[BaseException] = []

        def migrate(name: str) -> None:
            try:
                with psycopg.connect(make_conninfo(base, dbname=name)) as conn:
                    barrier.wait()
                    assert storage.apply_migrations(conn) == MIGRATIONS
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=migrate, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        with psycopg.connect(base, autocommit=True) as admin:
            assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname IN"
                                 " ('anon', 'authenticated', 'service_role')").fetchone() == (3,)
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def test_0008_gives_old_flagged_rows_their_reasons_and_keeps_flags_and_reasons_in_step(empty_database_url, monkeypatch):
    """Rows published before 0008 were flagged for their mean squares only: the migration names
    which; afterwards the database refuses a flag without a reason, a reason without the flag,
    and an unknown reason."""
    import irt_pipeline.storage.migrate as migrate

    before_0008 = [(name, text) for name, text in migration_files() if name < "0008"]
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        monkeypatch.setattr(migrate, "migration_files", lambda: before_0008)
        migrate.apply_migrations(conn)
        monkeypatch.undo()
        item = conn.execute("INSERT INTO items (id, item_bank) VALUES (gen_random_uuid(), 'b') RETURNING id").fetchone()[0]
        run = conn.execute("INSERT INTO irt_calibration_runs (item_bank, config) VALUES ('b', '{}') RETURNING id").fetchone()[0]
        insert = ("INSERT INTO irt_item_parameters (item_id, calibration_run_id, a, b, c, a_se, b_se, c_se,"
                  " infit_mnsq, outfit_mnsq, is_flagged, response_count) VALUES (%s, %s, 1, 0, 0.2, 0.1, 0.1, 0.05,"
                  " %s, %s, %s, 100)")
        conn.execute(insert, (item, run, 0.65, 1.4, True))
        assert migrate.apply_migrations(conn) == [name for name, _ in migration_files() if name >= "0008"]
        assert conn.execute("SELECT flag_reasons FROM irt_item_parameters").fetchone()[0] == ["infit", "outfit"]
        item2 = conn.execute("INSERT INTO items (id, item_bank) VALUES (gen_random_uuid(), 'b') RETURNING id").fetchone()[0]
        for flagged, reasons in ((True, []), (False, ["infit"]), (True, ["typo"])):
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(
                    "INSERT INTO irt_item_parameters (item_id, calibration_run_id, a, b, c, infit_mnsq, outfit_mnsq,"
                    " is_flagged, flag_reasons, response_count) VALUES (%s, %s, 1, 0, 0.2, 1, 1, %s, %s, 100)",
                    (item2, run, flagged, reasons))
        conn.execute(
            "INSERT INTO irt_item_parameters (item_id, calibration_run_id, a, b, c, infit_mnsq, outfit_mnsq,"
            " is_flagged, flag_reasons, response_count) VALUES (%s, %s, 3, 0, 0.2, 1, 1, true, %s, 100)",
            (item2, run, ["at_bound"]))
        assert conn.execute("SELECT a_se FROM irt_item_parameters WHERE item_id = %s", (item2,)).fetchone()[0] is None

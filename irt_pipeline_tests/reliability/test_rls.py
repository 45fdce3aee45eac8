"""Row-level security with Supabase's API roles (issue 5, point 1).

As PostgREST does, each statement runs after ``SET ROLE <role>`` with the JWT claims in
``request.jwt.claims``. anon and authenticated must get no row and no write on
irt_calibration_runs, irt_item_parameters or the view irt_item_parameters_latest; service_role
reads and writes. Two layers are checked separately:

* as deployed: migration 0004 revokes every privilege of anon/authenticated: refused outright;
* with Supabase's default privileges (``GRANT ALL ... TO anon, authenticated``, which a Supabase
  project gives every new table and view in public): RLS alone shows nothing and refuses every
  write, through the security-invoker view too.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from irt_pipeline import storage
from irt_pipeline_tests.storage.helpers import add_items, parameter_frame, publish

pytestmark = pytest.mark.db

RELATIONS = ("irt_calibration_runs", "irt_item_parameters", "irt_item_parameters_latest")
# (role, JWT claims): the API roles with their own claims, and a session that forges the
# service_role claim (set_config is open to every role).
OUTSIDERS = [
    ("anon", {"role": "anon"}),
    ("authenticated", {"role": "authenticated", "sub": str(uuid.uuid4())}),
    ("authenticated", {"role": "service_role", "sub": str(uuid.uuid4())}),
    ("anon", {"role": "service_role"}),
]
SERVICE = ("service_role", {"role": "service_role"})


@pytest.fixture
def published(conn):
    """One completed run with three parameter rows (written as the owner, as the pipeline does)."""
    items = add_items(conn, "bank-rls", 3)
    run_id = storage.start_run(conn, item_bank="bank-rls", config={"model": "3pl"}, dagster_run_id=None)
    publish(conn, run_id, parameter_frame(items))
    return {"run_id": run_id, "items": items}


def as_role(conn, role: str, claims: dict | None, statement: str, params=(), *, supabase_grants: bool = False):
    """Run one statement as `role` with `claims` in a transaction that is always rolled back.

    Returns ("rows", rows) for a query, ("count", rowcount) for a write, or ("refused", SQLSTATE).
    """
    outcome = None
    try:
        with conn.transaction():
            if supabase_grants:
                conn.execute("GRANT ALL ON irt_calibration_runs, irt_item_parameters, irt_item_parameters_latest"
                             " TO anon, authenticated")
            conn.execute(f"SET LOCAL ROLE {role}")
            if claims is not None:
                conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
            cur = conn.execute(statement, params)
            outcome = ("rows", cur.fetchall()) if cur.description else ("count", cur.rowcount)
            raise psycopg.Rollback()
    except psycopg.Error as exc:
        outcome = ("refused", exc.sqlstate)
    return outcome


def reads(conn, role, claims, **kw):
    return {rel: as_role(conn, role, claims, f"SELECT * FROM {rel}", **kw) for rel in RELATIONS}


def writes(conn, role, claims, published, **kw):
    run, item = published["run_id"], published["items"][0]
    new_run = str(uuid.uuid4())
    return {
        "insert run": as_role(conn, role, claims, "INSERT INTO irt_calibration_runs (id, config) VALUES (%s, '{}')",
                              (new_run,), **kw),
        "update run": as_role(conn, role, claims, "UPDATE irt_calibration_runs SET status = 'failed'", **kw),
        "delete run": as_role(conn, role, claims, "DELETE FROM irt_calibration_runs", **kw),
        "insert parameters": as_role(
            conn, role, claims,
            "INSERT INTO irt_item_parameters (item_id, calibration_run_id, a, b, c, a_se, b_se, c_se,"
            " infit_mnsq, outfit_mnsq, response_count) VALUES (%s, %s, 1, 0, 0.2, 0.1, 0.1, 0.1, 1, 1, 100)",
            (item, run), **kw),
        "update parameters": as_role(conn, role, claims, "UPDATE irt_item_parameters SET a = 2.9", **kw),
        "delete parameters": as_role(conn, role, claims, "DELETE FROM irt_item_parameters", **kw),
        "insert view": as_role(conn, role, claims, "INSERT INTO irt_item_parameters_latest (item_id) VALUES (%s)",
                               (item,), **kw),
        "update view": as_role(conn, role, claims, "UPDATE irt_item_parameters_latest SET a = 2.9", **kw),
        "delete view": as_role(conn, role, claims, "DELETE FROM irt_item_parameters_latest", **kw),
    }


def unchanged(conn, published) -> None:
    assert conn.execute("SELECT status FROM irt_calibration_runs").fetchall() == [("completed",)]
    assert conn.execute("SELECT count(*), min(a), max(a) FROM irt_item_parameters").fetchone() == (3, 1.2, 1.2)


@pytest.mark.parametrize(("role", "claims"), OUTSIDERS)
def test_api_roles_are_refused_every_read_and_write(conn, published, role, claims):
    """As deployed: no privilege at all (42501 insufficient_privilege), with any claims."""
    outcomes = {**reads(conn, role, claims), **writes(conn, role, claims, published)}
    view_writes = {name: outcomes.pop(name) for name in ("insert view", "update view", "delete view")}
    assert outcomes == {name: ("refused", "42501") for name in outcomes}
    # the view is not updatable: PostgreSQL refuses the statement before checking privileges (55000)
    assert {outcome[0] for outcome in view_writes.values()} == {"refused"}
    unchanged(conn, published)


@pytest.mark.parametrize(("role", "claims"), OUTSIDERS)
def test_with_supabase_default_grants_rls_alone_shows_no_row_and_refuses_writes(conn, published, role, claims):
    outcomes = reads(conn, role, claims, supabase_grants=True)
    assert outcomes == {rel: ("rows", []) for rel in RELATIONS}  # the view too: no bypass
    outcomes = writes(conn, role, claims, published, supabase_grants=True)
    # inserts violate the policies' WITH CHECK (42501); updates and deletes see no row
    assert outcomes["insert run"] == outcomes["insert parameters"] == ("refused", "42501")
    for name in ("update run", "delete run", "update parameters", "delete parameters"):
        assert outcomes[name] == ("count", 0), name
    for name in ("insert view", "update view", "delete view"):  # not an updatable view
        assert outcomes[name][0] == "refused" or outcomes[name] == ("count", 0), name
    unchanged(conn, published)


def test_service_role_reads_and_writes(conn, published):
    role, claims = SERVICE
    outcomes = reads(conn, role, claims)
    assert [len(outcomes[rel][1]) for rel in RELATIONS] == [1, 3, 3]
    outcomes = writes(conn, role, claims, published)
    assert outcomes["insert run"] == ("count", 1)
    assert outcomes["update run"] == outcomes["delete run"] == ("count", 1)
    assert outcomes["update parameters"] == outcomes["delete parameters"] == ("count", 3)
    # a second parameter row of (item, run) is refused by the unique index, not by RLS
    assert outcomes["insert parameters"] == ("refused", "23505")
    assert outcomes["insert view"][0] == "refused"  # the view is read-only for everyone
    unchanged(conn, published)  # every write above was rolled back


def test_the_view_applies_the_querying_roles_rls_not_its_owners(conn, published):
    """security_invoker: a restrictive policy that hides the parameter rows from service_role
    hides them in the view too, while the view's owner still sees them."""
    with conn.transaction():
        conn.execute("CREATE POLICY hide_all ON irt_item_parameters AS RESTRICTIVE FOR SELECT USING (false)")
        conn.execute("SET LOCAL ROLE service_role")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(SERVICE[1]),))
        as_service = conn.execute("SELECT count(*) FROM irt_item_parameters_latest").fetchone()
        conn.execute("RESET ROLE")
        as_owner = conn.execute("SELECT count(*) FROM irt_item_parameters_latest").fetchone()
        raise psycopg.Rollback()
    assert (as_service, as_owner) == ((0,), (3,))


def test_service_role_without_the_claim_sees_nothing_on_plain_postgresql(conn, published):
    """The brief's policies test the JWT claim: without it even service_role gets no row here.
    (On Supabase service_role has BYPASSRLS; the pipeline itself writes as the tables' owner.)"""
    outcomes = reads(conn, "service_role", None)
    assert outcomes == {rel: ("rows", []) for rel in RELATIONS}

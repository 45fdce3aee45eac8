"""The storage subcommands of the CLI: exit codes and output."""

from __future__ import annotations

import json

import pytest

from irt_pipeline import storage
from irt_pipeline.cli import main
from irt_pipeline.storage.abilities import write_abilities
from irt_pipeline.storage.commands import (
    ability_command,
    describe_database,
    migrate_command,
    parameters_command,
    seed_demo_command,
)
from irt_pipeline_tests.storage.helpers import add_items, new_id, parameter_frame, publish

pytestmark = pytest.mark.db


def use(monkeypatch, url: str) -> None:
    monkeypatch.setenv("IRT_DATABASE_URL", url)


def test_describe_database_masks_the_password():
    assert describe_database("postgresql://svc:s3cr3t@db.example.supabase.co:5432/postgres?sslmode=require") \
        == "postgresql://svc:***@db.example.supabase.co:5432/postgres"
    assert describe_database("postgresql://postgres:@/postgres?host=/x/.irt/pgdata") \
        == "postgresql://postgres@/x/.irt/pgdata/postgres"
    assert "s3cr3t" not in describe_database("host=h user=u password=s3cr3t dbname=d")


def test_migrate_command_reports_what_it_applied(monkeypatch, capsys, empty_database_url):
    use(monkeypatch, empty_database_url)
    assert migrate_command() == 0
    out = capsys.readouterr().out
    assert out.startswith("database: postgresql://")
    assert "applied: 0001_supabase_compat.sql, 0002_upstream_tables.sql, 0003_irt_calibration.sql" in out
    assert main(["migrate"]) == 0
    assert "applied: nothing (schema up to date)" in capsys.readouterr().out


def test_seed_demo_command_prints_the_summary(monkeypatch, capsys, database_url):
    use(monkeypatch, database_url)
    assert seed_demo_command(bank="cli", n_items=60, n_students=150, seed=3) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{"):])
    assert (summary["item_bank"], summary["items"], summary["misfitting_items"]) == ("cli", 60, 2)
    with storage.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM student_attempts").fetchone() == (summary["attempts"],)


def test_seed_demo_command_refuses_a_real_bank(monkeypatch, capsys, database_url):
    use(monkeypatch, database_url)
    with storage.connect(database_url) as conn:
        add_items(conn, "real", 1)
    assert seed_demo_command(bank="real", n_items=10, n_students=10, seed=1) == 1
    assert capsys.readouterr().err.startswith("VALIDATION_ERROR: item bank 'real' holds 1 item(s)")


def test_parameters_command_prints_json_or_item_not_found(monkeypatch, capsys, database_url):
    use(monkeypatch, database_url)
    with storage.connect(database_url) as conn:
        items = add_items(conn, "bank-a", 1)
        run_id = storage.start_run(conn, item_bank="bank-a", config={"model": "3pl"}, dagster_run_id=None)
        publish(conn, run_id, parameter_frame(items))
        expected = storage.latest_parameters(conn, items[0])

    assert main(["parameters", items[0]]) == 0
    assert json.loads(capsys.readouterr().out) == {"data": expected.model_dump(mode="json"), "error": None}

    unknown = new_id()
    assert parameters_command(unknown) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"data": None, "error": {
        "code": "ITEM_NOT_FOUND", "message": f"no calibrated parameters for item {unknown}"}}
    assert captured.err == f"ITEM_NOT_FOUND: no calibrated parameters for item {unknown}\n"
    assert parameters_command("uuid-1") == 1
    assert "ITEM_NOT_FOUND" in capsys.readouterr().err


def test_parameters_command_on_an_unmigrated_database(monkeypatch, capsys, empty_database_url):
    use(monkeypatch, empty_database_url)
    assert parameters_command(new_id()) == 1
    assert "run `irt-pipeline migrate`" in capsys.readouterr().err


def test_ability_command_prints_json_or_student_not_found(monkeypatch, capsys, database_url):
    use(monkeypatch, database_url)
    student = new_id()
    with storage.connect(database_url) as conn:
        run_id = storage.start_run(conn, item_bank="bank-a", config={"model": "3pl"}, dagster_run_id=None)
        with conn.transaction():
            write_abilities(conn, run_id, "bank-a", [student], [0.42], [0.31], [25])
            conn.execute("UPDATE irt_calibration_runs SET status = 'completed', completed_at = now()"
                         " WHERE id = %s", (run_id,))
        expected = storage.latest_ability(conn, student, "bank-a")
    assert expected is not None and expected.theta == 0.42

    assert main(["ability", student, "--bank", "bank-a"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {"data": expected.model_dump(mode="json"), "error": None}
    assert data["data"]["calibration_run_id"] == run_id and data["data"]["response_count"] == 25

    unknown = new_id()
    assert ability_command(unknown, bank="bank-a") == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"data": None, "error": {
        "code": "STUDENT_NOT_FOUND", "message": f"no ability of student {unknown} on item bank 'bank-a'"}}
    assert captured.err == f"STUDENT_NOT_FOUND: no ability of student {unknown} on item bank 'bank-a'\n"
    assert main(["ability", student, "--bank", "bank-b"]) == 1          # known student, other bank
    assert "STUDENT_NOT_FOUND" in capsys.readouterr().err
    assert ability_command("uuid-1", bank="bank-a") == 1
    assert "STUDENT_NOT_FOUND" in capsys.readouterr().err


def test_ability_command_needs_a_bank(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["ability", new_id()])
    assert exited.value.code == 2
    assert "--bank" in capsys.readouterr().err


def test_ability_command_on_an_unmigrated_database(monkeypatch, capsys, empty_database_url):
    use(monkeypatch, empty_database_url)
    assert ability_command(new_id(), bank="bank-a") == 1
    assert "run `irt-pipeline migrate`" in capsys.readouterr().err

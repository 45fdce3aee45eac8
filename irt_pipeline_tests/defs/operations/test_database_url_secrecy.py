"""A malformed IRT_DATABASE_URL never shows its password (issue 12, section 3).

An unescaped ``%`` in the password made psycopg's parse error quote it:
``CALIBRATION_FAILED: cannot read the item banks: invalid percent-encoded token: "<password>"``, on
stderr and, with --json, on stdout, and in Dagster step errors. `storage.connect` now reports the
URL masked (the CLI's `describe_database`) with a generic reason, and chains nothing.
"""

from __future__ import annotations

import io
import json

import pytest

from irt_pipeline import cli
from irt_pipeline.defs.operations.launch import calibrate_command
from irt_pipeline.defs.resources import IrtDatabase
from irt_pipeline.storage.connection import InvalidDatabaseUrl, connect, mask_database_url

SECRET = "Pa%zzw0rd-7f3k"
BAD_URL = f"postgresql://postgres:{SECRET}@db.example.supabase.co:5432/postgres?sslmode=require"
MASKED = "postgresql://postgres:***@db.example.supabase.co:5432/postgres"
MALFORMED = [
    BAD_URL,
    f"postgresql://svc:{SECRET}@with-at@db.example.com/postgres",              # unescaped @ too
    f"postgresql://svc@db.example.com/postgres?password={SECRET}&sslmode=require",  # in the query
    f"postgresql://svc:{SECRET}@db.example.com/postgres?bogus=1",               # another parse error
]


@pytest.mark.parametrize("url", MALFORMED)
def test_connect_reports_a_malformed_url_masked_and_chains_nothing(url):
    with pytest.raises(InvalidDatabaseUrl) as caught:
        connect(url)
    message = str(caught.value)
    assert SECRET not in message and "w0rd" not in message
    assert message.startswith("invalid database URL postgresql://svc")  or message.startswith(f"invalid database URL {MASKED}")
    assert "percent-encode special characters of the password" in message
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert SECRET not in mask_database_url(url)


def _calibrate(json_output: bool, database: IrtDatabase | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = calibrate_command(bank="any", min_responses=None, max_iterations=None, convergence_threshold=None,
                             item_ids=None, json_output=json_output, database=database, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("json_output", [False, True])
def test_calibrate_command_does_not_print_the_password(json_output):
    code, out, err = _calibrate(json_output, IrtDatabase(url=BAD_URL))
    assert code == 1
    assert SECRET not in out + err and "w0rd" not in out + err
    assert err.startswith(f"CALIBRATION_FAILED: cannot read the item banks: invalid database URL {MASKED}:")
    if json_output:
        envelope = json.loads(out)
        assert envelope["data"] is None and envelope["error"]["code"] == "CALIBRATION_FAILED"
        assert MASKED in envelope["error"]["message"]
    else:
        assert out == ""


@pytest.mark.parametrize("json_output", [False, True])
def test_the_cli_with_a_malformed_irt_database_url_does_not_print_the_password(monkeypatch, capsys, json_output):
    """The production path: `irt-pipeline calibrate` reads IRT_DATABASE_URL (dg.EnvVar)."""
    monkeypatch.setenv("IRT_DATABASE_URL", BAD_URL)
    code = cli.main(["calibrate", "--bank", "any", *(["--json"] if json_output else [])])
    captured = capsys.readouterr()
    assert code == 1
    assert SECRET not in captured.out + captured.err
    assert f"invalid database URL {MASKED}" in captured.err
    assert (MASKED in captured.out) == json_output


def test_a_dagster_run_with_a_malformed_url_stores_no_password(calibration_job, instance):
    """Step errors (and their causes) are stored in Dagster's event log: none holds the password."""
    from irt_pipeline_tests.defs.conftest import failure_text, run_job

    result = run_job(calibration_job, instance, BAD_URL, "any")
    assert not result.success
    assert f"invalid database URL {MASKED}" in failure_text(result)
    logs = instance.all_logs(result.run_id)
    assert logs and not [entry for entry in logs if SECRET in str(entry) or "w0rd" in str(entry)]

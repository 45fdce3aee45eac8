"""`irt-pipeline calibrate` (launch.calibrate_command): exit codes, output, what it leaves behind."""

from __future__ import annotations

import io
import re

import pytest

from irt_pipeline import cli, storage
from irt_pipeline.defs.calibration import assets as assets_module
from irt_pipeline.defs.operations.launch import calibrate_command
from irt_pipeline.defs.resources import IrtDatabase
from irt_pipeline_tests.defs.conftest import load_standard_bank, parameter_rows, runs

pytestmark = pytest.mark.db


def _calibrate(database_url, instance, bank, **overrides):
    out, err = io.StringIO(), io.StringIO()
    kwargs = dict(min_responses=None, max_iterations=None, convergence_threshold=None, item_ids=None)
    kwargs.update(overrides)
    code = calibrate_command(bank=bank, database=IrtDatabase(url=database_url), instance=instance,
                             out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def _field(text: str, name: str) -> str:
    match = re.search(rf"^{name}: (.*)$", text, re.MULTILINE)
    assert match, f"no {name!r} line in:\n{text}"
    return match.group(1)


def test_success_prints_the_run_summary(database_url, instance):
    bank = load_standard_bank(database_url)
    code, out, err = _calibrate(database_url, instance, bank.name)
    assert code == 0, err
    (run,) = runs(database_url, bank.name)
    assert _field(out, "calibration_run_id") == str(run["id"])
    assert _field(out, "items_calibrated") == str(len(bank.eligible))
    assert _field(out, "items_skipped") == "3 (insufficient_responses: 2, no_variance: 1)"
    assert _field(out, "items_flagged") == str(run["items_flagged"])
    assert _field(out, "convergence_achieved") == "true"
    assert _field(out, "iterations_used") == str(run["iterations_used"])
    assert float(_field(out, "elapsed_seconds")) == pytest.approx(run["elapsed_seconds"], abs=0.01)
    dagster_run_id = _field(out, "dagster_run_id")
    assert f"/runs/{dagster_run_id}" in _field(out, "dagster_run")
    assert run["dagster_run_id"] == dagster_run_id
    stored = instance.get_run_by_id(dagster_run_id)  # the run is in the instance, visible in the UI
    assert stored is not None and stored.job_name == "calibration_job" and stored.is_success
    assert instance.has_dynamic_partition("item_bank", bank.name)


def test_linking_none_from_the_command_line_starts_a_new_scale(database_url, instance):
    bank = load_standard_bank(database_url)
    code, out, err = _calibrate(database_url, instance, bank.name)
    assert code == 0, err
    assert _field(out, "linking").startswith("initial (scale of run ")
    code, out, err = _calibrate(database_url, instance, bank.name, linking="none")
    assert code == 0, err
    first, second = runs(database_url, bank.name)
    assert second["linking_method"] == "none" and second["config"]["linking"] == "none"
    assert _field(out, "linking") == (f"none (scale of run {second['id']}; theta_bank = 1.0000 theta_run + 0.0000; "
                                      "anchors 0, drifted 0)")
    code, out, err = _calibrate(database_url, instance, bank.name)  # linked to the new scale
    assert code == 0, err
    assert re.fullmatch(rf"stocking_lord \(scale of run {second['id']}; theta_bank = 1\.0000 theta_run \+ "
                        r"-?0\.0000; anchors \d+, drifted \d+\)", _field(out, "linking"))
    with pytest.raises(SystemExit) as exited:  # argparse: only the two methods
        cli.main(["calibrate", "--bank", bank.name, "--linking", "mean_sigma"])
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"min_responses": 0}, "min_responses"), ({"max_iterations": 501}, "max_iterations"),
     ({"convergence_threshold": 1.5}, "convergence_threshold"), ({"item_ids": ["nope"]}, "item_ids")],
)
def test_invalid_config_exits_2_before_anything(database_url, instance, overrides, field):
    bank = load_standard_bank(database_url)
    code, out, err = _calibrate(database_url, instance, bank.name, **overrides)
    assert code == 2
    assert err.startswith(f"VALIDATION_ERROR: {field}: ")
    assert out == ""
    assert runs(database_url) == []
    assert instance.get_runs() == []
    assert not instance.has_dynamic_partition("item_bank", bank.name)


def test_unknown_bank_exits_2(database_url, instance):
    load_standard_bank(database_url)
    code, _, err = _calibrate(database_url, instance, "no-such-bank")
    assert code == 2 and err.startswith("VALIDATION_ERROR: bank: ") and "bank-a" in err
    assert instance.get_runs() == []


def test_insufficient_data_exits_3(database_url, instance):
    bank = load_standard_bank(database_url)
    code, out, err = _calibrate(database_url, instance, bank.name, min_responses=10_000)
    assert code == 3
    assert err.startswith("INSUFFICIENT_DATA: ")
    (run,) = runs(database_url, bank.name)
    assert f"calibration_run_id: {run['id']} (status: failed)" in err
    assert "dagster_run: /runs/" in err


def test_calibration_in_progress_exits_4(database_url, instance):
    bank = load_standard_bank(database_url)
    with storage.connect(database_url) as conn:  # open: its session holds the other run's lease
        storage.start_run(conn, item_bank=bank.name, config={"model": "3pl"}, dagster_run_id="elsewhere")
        code, _, err = _calibrate(database_url, instance, bank.name)
    assert code == 4
    assert err.startswith("CALIBRATION_IN_PROGRESS: ")
    assert parameter_rows(database_url) == []


def test_engine_failure_exits_1(database_url, instance, monkeypatch):
    bank = load_standard_bank(database_url)

    def broken(*args, **kwargs):
        raise ValueError("simulated engine failure")

    monkeypatch.setattr(assets_module, "calibrate_3pl", broken)
    code, _, err = _calibrate(database_url, instance, bank.name)
    assert code == 1
    assert err.startswith("CALIBRATION_FAILED: item_parameters: ValueError: simulated engine failure")
    (run,) = runs(database_url, bank.name)
    assert run["status"] == "failed"


def test_cli_uses_dagster_home_and_irt_database_url(database_url, tmp_path, monkeypatch, capsys):
    """The real entry point: DagsterInstance.get() on DAGSTER_HOME (created), IRT_DATABASE_URL."""
    bank = load_standard_bank(database_url)
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("IRT_DATABASE_URL", database_url)
    code = cli.main(["calibrate", "--bank", bank.name, "--max-iterations", "50",
                     "--item-id", "not-a-uuid"])
    assert code == 2 and "VALIDATION_ERROR: item_ids" in capsys.readouterr().err
    code = cli.main(["calibrate", "--bank", bank.name, "--max-iterations", "50"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert home.is_dir() and (home / "storage").is_dir()
    (run,) = runs(database_url, bank.name)
    assert _field(captured.out, "calibration_run_id") == str(run["id"])
    assert run["config"]["max_iterations"] == 50

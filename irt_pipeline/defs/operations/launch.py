"""`irt-pipeline calibrate`: run calibration_job for one bank in this process, print the summary.

Order of work:
1. validate the config (CalibrationConfig, the same pydantic model the run uses): an invalid
   value prints ``VALIDATION_ERROR: <field>: ...`` and exits 2, before any database write or
   Dagster run; so does a bank that has no items;
2. open the Dagster instance of DAGSTER_HOME (default and created if missing: <repo>/.dagster_home,
   the folder the Makefile exports), register the bank as an ``item_bank`` partition if new;
3. execute `calibration_job` (the job of the code location, so its failure hook applies) in
   process for that partition: the run is stored in the instance and shows in the UI;
4. print the run summary from the audit row (exit 0), or the coded reason (exit code below).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import dagster as dg
import pydantic

from irt_pipeline import errors
from irt_pipeline.defs.calibration.config import CalibrationConfig, run_config_for
from irt_pipeline.defs.calibration.jobs import JOB_NAME
from irt_pipeline.defs.calibration.partitions import ITEM_BANK_PARTITIONS_NAME
from irt_pipeline.defs.calibration.values import FitStatistics, skipped_reason_counts
from irt_pipeline.defs.operations.failures import code_of, message_from_error_info
from irt_pipeline.defs.resources import IrtDatabase, irt_database
from irt_pipeline.models import Envelope, IrtCalibrationResponse

EXIT_OK = 0
EXIT_CODES = {
    errors.CalibrationFailedError.code: 1,
    errors.ValidationError.code: 2,
    errors.InsufficientDataError.code: 3,
    errors.CalibrationInProgressError.code: 4,
}
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"
# Copied into the project-local DAGSTER_HOME when it has no dagster.yaml: the root dagster.yaml, the
# local instance config of `make dev` and `dg dev` (SQLite, one run per bank in the run queue, run
# monitoring, no telemetry). Production's is deploy/dagster.yaml.
LOCAL_INSTANCE_YAML = PROJECT_ROOT / "dagster.yaml"


ERROR_CLASSES = {cls.code: cls for cls in (errors.ValidationError, errors.InsufficientDataError,
                                           errors.CalibrationInProgressError, errors.CalibrationFailedError)}


class _Output:
    """Where the command writes: human text (summary on stdout, errors on stderr), or with
    --json the brief's envelope on stdout (errors also on stderr, for people)."""

    def __init__(self, out: TextIO, err: TextIO, json_output: bool) -> None:
        self.out, self.err, self.json = out, err, json_output

    def failure(self, message: str) -> int:
        """Report a coded message ("CODE: detail"); return its exit status."""
        code = code_of(message)
        print(message, file=self.err)
        if self.json:
            detail = message[len(code) + 2:] if message.startswith(f"{code}: ") else message
            print(Envelope.failure(ERROR_CLASSES[code](detail)).model_dump_json(indent=2), file=self.out)
        return EXIT_CODES[code]

    def validation(self, field: str, message: str) -> int:
        return self.failure(f"{errors.ValidationError.code}: {field}: {message}")


def validate_config(
    *,
    min_responses: int | None,
    max_iterations: int | None,
    convergence_threshold: float | None,
    item_ids: Sequence[str] | None,
    linking: str | None = None,
) -> CalibrationConfig:
    """CalibrationConfig from the CLI values (None = the default); raises pydantic.ValidationError."""
    values = {
        "min_responses": min_responses,
        "max_iterations": max_iterations,
        "convergence_threshold": convergence_threshold,
        "item_ids": list(item_ids) if item_ids is not None else None,
        "linking": linking,
    }
    return CalibrationConfig(**{k: v for k, v in values.items() if v is not None})


def dagster_home() -> Path:
    """DAGSTER_HOME (set to <repo>/.dagster_home when unset), created if missing."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    if home == DEFAULT_DAGSTER_HOME.resolve() and not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML.read_text())
    return home


def calibrate_command(
    *,
    bank: str,
    min_responses: int | None,
    max_iterations: int | None,
    convergence_threshold: float | None,
    item_ids: Sequence[str] | None,
    linking: str | None = None,
    json_output: bool = False,
    database: IrtDatabase | None = None,
    instance: dg.DagsterInstance | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Exit status: 0 completed; 2 VALIDATION_ERROR; 3 INSUFFICIENT_DATA; 4 CALIBRATION_IN_PROGRESS;
    1 CALIBRATION_FAILED. With `json_output` stdout gets the brief's envelope instead of the
    summary. `database`/`instance` default to the production ones (tests pass theirs)."""
    output = _Output(out or sys.stdout, err or sys.stderr, json_output)
    try:
        config = validate_config(
            min_responses=min_responses,
            max_iterations=max_iterations,
            convergence_threshold=convergence_threshold,
            item_ids=item_ids,
            linking=linking,
        )
    except pydantic.ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']} (got {e.get('input')!r})"
                    for e in exc.errors()]
        return output.failure(f"{errors.ValidationError.code}: " + "; ".join(problems))
    if not bank or not bank.strip():
        return output.validation("bank", "must not be empty")

    db = database or irt_database()
    try:
        banks = db.item_banks()
    except Exception as exc:
        return output.failure(f"{errors.CalibrationFailedError.code}: cannot read the item banks: {exc}")
    if bank not in banks:
        known = ", ".join(banks[:20]) or "none"
        return output.validation("bank", f"item bank {bank!r} has no items (known banks: {known})")

    if instance is not None:
        return _run(instance, db, bank, config, output)
    dagster_home()
    with dg.DagsterInstance.get() as owned:
        return _run(owned, db, bank, config, output)


def _run(
    instance: dg.DagsterInstance,
    db: IrtDatabase,
    bank: str,
    config: CalibrationConfig,
    output: _Output,
) -> int:
    from irt_pipeline.definitions import defs

    if not instance.has_dynamic_partition(ITEM_BANK_PARTITIONS_NAME, bank):
        instance.add_dynamic_partitions(ITEM_BANK_PARTITIONS_NAME, [bank])
    job = defs().resolve_job_def(JOB_NAME)
    run_config = run_config_for(config)
    run_config = dg.RunConfig(
        ops=run_config.ops, loggers={"console": {"config": {"log_level": "INFO"}}}
    )
    resources = {"irt_db": db}
    result = job.execute_in_process(
        instance=instance,
        partition_key=bank,
        run_config=run_config,
        resources=resources,
        raise_on_error=False,
    )
    run_lines = [
        f"dagster_run_id: {result.run_id}",
        f"dagster_run: /runs/{result.run_id} (Dagster UI on DAGSTER_HOME={os.environ.get('DAGSTER_HOME', '?')})",
    ]
    audit = [r for r in db.runs_of_bank(bank) if r.get("dagster_run_id") == result.run_id]
    if result.success and audit and audit[0]["status"] == "completed":
        row = audit[0]
        stats = result.output_for_node("fit_statistics")
        skipped = list(stats.skipped) if isinstance(stats, FitStatistics) else []
        if output.json:
            response = IrtCalibrationResponse(
                calibration_run_id=str(row["id"]),
                items_calibrated=row["items_calibrated"],
                items_skipped=row["items_skipped"],
                items_flagged=row["items_flagged"],
                convergence_achieved=row["convergence_achieved"],
                iterations_used=row["iterations_used"],
                elapsed_seconds=row["elapsed_seconds"],
                parameters=db.run_parameters(str(row["id"])),
                skipped_items=skipped,
            )
            print(Envelope.ok(response).model_dump_json(indent=2), file=output.out)
            return EXIT_OK
        reasons = skipped_reason_counts(skipped)
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
        lines = [
            f"calibration_run_id: {row['id']}",
            f"item_bank: {bank}",
            "status: completed",
            f"items_calibrated: {row['items_calibrated']}",
            f"items_skipped: {row['items_skipped']}" + (f" ({detail})" if detail else ""),
            f"items_flagged: {row['items_flagged']}",
            f"linking: {row['linking_method']} (scale of run {row['scale_run_id']}; "
            f"theta_bank = {row['theta_sd']:.4f} theta_run + {row['theta_mean']:.4f}; "
            f"anchors {row['anchor_items']}, drifted {row['drifted_items']})",
            f"convergence_achieved: {str(bool(row['convergence_achieved'])).lower()}",
            f"iterations_used: {row['iterations_used']}",
            f"elapsed_seconds: {float(row['elapsed_seconds']):.2f}",
            *run_lines,
        ]
        print("\n".join(lines), file=output.out)
        return EXIT_OK

    status = output.failure(_failure_message(result))
    if audit:
        run_lines.insert(0, f"calibration_run_id: {audit[0]['id']} (status: {audit[0]['status']})")
    print("\n".join(run_lines), file=output.err)
    return status


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The coded message of the first failed step (the step that caused the run to fail)."""
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        if error is not None:
            return message_from_error_info(event.step_key or "run", error)
    if result.success:
        return f"{errors.CalibrationFailedError.code}: the run succeeded but left no completed audit row"
    return f"{errors.CalibrationFailedError.code}: Dagster run {result.run_id} failed"

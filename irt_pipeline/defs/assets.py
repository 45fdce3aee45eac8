"""The calibration chain of one item bank (one partition = one bank):

    response_matrix -> eligible_items -> item_parameters -> fit_statistics -> supabase_writes

Only the last asset publishes; the blocking check on ``fit_statistics`` audits the table before
(write-audit-publish). The audit row in ``irt_calibration_runs`` is started by
``item_parameters``, the first step of the calibration proper, and each later step carries its
id; when no item is eligible, ``eligible_items`` writes the failed row itself (see its
docstring). A failing step marks the row ``failed`` through the job's failure hook and the
run-failure sensor (hooks.py, sensors.py).

Pictures on the asset pages (plots.py, PNG in markdown metadata): ``item_parameters`` shows the
EM convergence; ``fit_statistics`` the a-vs-b scatter with flagged items marked, the item
characteristic curves of the flagged items and a table of them.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at import time
# (Config class, resource and input types) and cannot resolve postponed (string) ones.
import time
from collections.abc import Callable

import dagster as dg

from irt_pipeline import errors
from irt_pipeline.defs.backfills import calibration_backfill_policy
from irt_pipeline.defs.checks import (
    FIT_STATISTICS_CHECKS,
    ITEM_PARAMETERS_CHECKS,
    em_converged,
    item_fit_within_range,
    parameters_within_bounds,
)
from irt_pipeline.defs.config import CalibrationConfig
from irt_pipeline.defs.partitions import item_bank_partitions
from irt_pipeline.defs import plots
from irt_pipeline.defs.reporting import flagged_items_markdown, id_list, skipped_table, summary_markdown
from irt_pipeline.defs.resources import IrtDatabase
from irt_pipeline.defs.values import (
    FIT_LOWER,
    FIT_UPPER,
    REASON_NOT_IN_BANK,
    EligibleItems,
    FitStatistics,
    ItemParameters,
    ResponseMatrix,
    build_response_matrix,
    parameter_table,
    select_eligible,
    skipped_reason_counts,
)
from irt_pipeline.engine import calibrate_3pl, item_fit

GROUP = "irt"
OWNERS = ["team:irt"]
POOL = "irt_calibration"  # one calibration at a time (dagster.yaml: pools at run granularity)
PROGRESS_EVERY = 5        # log the EM progress every this many iterations
SUPABASE_WRITES = dg.AssetKey("supabase_writes")


def _pictures(context: dg.AssetExecutionContext, drawings: dict[str, Callable[[], str | None]]) -> dict:
    """Markdown metadata from plots.py; a drawing that fails is logged and left out (a picture
    never fails a calibration)."""
    metadata = {}
    for key, draw in drawings.items():
        try:
            markdown = draw()
        except Exception as exc:
            context.log.warning(f"metadata picture {key!r} not drawn: {type(exc).__name__}: {exc}")
            continue
        if markdown:
            metadata[key] = dg.MetadataValue.md(markdown)
    return metadata


@dg.asset(
    group_name=GROUP,
    kinds={"postgres", "scipy"},
    owners=OWNERS,
    partitions_def=item_bank_partitions,
    backfill_policy=calibration_backfill_policy,
)
def response_matrix(
    context: dg.AssetExecutionContext, config: CalibrationConfig, irt_db: IrtDatabase
) -> ResponseMatrix:
    """Students x items response matrix of the bank, from the first attempt of each student on
    each item (later attempts are ignored). Sparse CSR, +1 correct / -1 incorrect / absent not
    answered; the bank's items nobody answered are empty columns. Holds the run's config."""
    bank = context.partition_key
    settings = config.settings()
    attempts, bank_items = irt_db.read_bank(bank)
    matrix = build_response_matrix(attempts, bank_items, item_bank=bank, settings=settings)
    context.add_output_metadata(
        {
            "item_bank": bank,
            "students": len(matrix.student_ids),
            "items": len(matrix.item_ids),
            "items_without_responses": len(matrix.unanswered_item_ids),
            "responses": matrix.n_responses,
            "density": round(matrix.density, 4),
            "dagster/row_count": matrix.n_responses,
            "config": dg.MetadataValue.json(settings.snapshot()),
        }
    )
    return matrix


@dg.asset(
    group_name=GROUP,
    kinds={"python", "scipy"},
    owners=OWNERS,
    partitions_def=item_bank_partitions,
    backfill_policy=calibration_backfill_policy,
)
def eligible_items(
    context: dg.AssetExecutionContext, irt_db: IrtDatabase, response_matrix: ResponseMatrix
) -> EligibleItems:
    """Items to calibrate: the item_ids filter (unknown ids skipped as not_in_bank), then at least
    min_responses responses (else insufficient_responses), then both correct and incorrect
    responses (else no_variance). When no item is left the run fails with INSUFFICIENT_DATA and a
    `failed` audit row is written here, since item_parameters (which starts the row) never runs
    (if the bank has a running calibration, that row cannot be started and the run fails with
    CALIBRATION_IN_PROGRESS instead)."""
    eligible = select_eligible(response_matrix)
    settings = eligible.settings
    reasons = skipped_reason_counts(eligible.skipped)
    context.add_output_metadata(
        {
            "items_eligible": eligible.n_items,
            "items_skipped": len(eligible.skipped),
            "students": len(eligible.student_ids),
            "responses": int(eligible.matrix.nnz),
            "skipped_by_reason": dg.MetadataValue.json(reasons),
            "skipped_items": skipped_table(eligible.skipped),
            "dagster/row_count": eligible.n_items,
        }
    )
    not_in_bank = [s.item_id for s in eligible.skipped if s.reason == REASON_NOT_IN_BANK]
    if not_in_bank:
        context.log.warning(
            f"{len(not_in_bank)} requested item id(s) are not items of bank {eligible.item_bank!r}: "
            + ", ".join(not_in_bank[:20])
        )
    if eligible.n_items == 0:
        error = errors.InsufficientDataError(
            f"no item of bank {eligible.item_bank!r} has at least {settings.min_responses} responses "
            f"with both correct and incorrect answers (skipped: {reasons or 'no items'})"
        )
        run_id = irt_db.start_run(
            item_bank=eligible.item_bank, config=settings.snapshot(), dagster_run_id=context.run.run_id
        )
        irt_db.fail_run(run_id, str(error))
        context.log.error(f"calibration run {run_id} failed: {error}")
        raise error
    return eligible


@dg.asset(
    group_name=GROUP,
    kinds={"python", "numpy"},
    owners=OWNERS,
    partitions_def=item_bank_partitions,
    backfill_policy=calibration_backfill_policy,
    pool=POOL,
    check_specs=ITEM_PARAMETERS_CHECKS,
    dagster_type=dg.PythonObjectDagsterType(ItemParameters),  # the value inside MaterializeResult
)
def item_parameters(
    context: dg.AssetExecutionContext, irt_db: IrtDatabase, eligible_items: EligibleItems
) -> dg.MaterializeResult:
    """3PL estimates (a, b, c and their standard errors) by MML-EM. Starts the `running` audit
    row in irt_calibration_runs (CALIBRATION_IN_PROGRESS if the bank already has one); runs
    only together with supabase_writes, which completes that row."""
    if SUPABASE_WRITES not in context.job_def.asset_layer.selected_asset_keys:
        # the row started here is completed only by supabase_writes: a run without it would
        # leave the bank's audit row 'running' for good (and block its next calibration)
        raise errors.ValidationError(
            "item_parameters starts a calibration run that only supabase_writes completes: "
            "materialize item_parameters, fit_statistics and supabase_writes in the same run"
        )
    settings = eligible_items.settings
    started_at = time.time()
    run_id = irt_db.start_run(
        item_bank=eligible_items.item_bank, config=settings.snapshot(), dagster_run_id=context.run.run_id
    )
    context.log.info(
        f"calibration run {run_id}: {eligible_items.n_items} items x {len(eligible_items.student_ids)} "
        f"students, max {settings.max_iterations} iterations, threshold {settings.convergence_threshold}"
    )

    def progress(iteration: int, max_change: float, log_likelihood: float) -> None:
        if iteration == 1 or iteration % PROGRESS_EVERY == 0:
            context.log.info(
                f"EM iteration {iteration}/{settings.max_iterations}: "
                f"max change {max_change:.2e}, log-likelihood {log_likelihood:.2f}"
            )

    t0 = time.perf_counter()
    result = calibrate_3pl(
        eligible_items.matrix,
        max_iterations=settings.max_iterations,
        convergence_threshold=settings.convergence_threshold,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    trace = result.max_change_trace
    context.log.info(
        f"EM stopped after {result.iterations} iterations in {seconds:.2f} s: converged={result.converged}, "
        f"last max change {float(trace[-1]) if len(trace) else float('nan'):.2e}, "
        f"log-likelihood {result.log_likelihood:.2f}"
    )
    if not result.converged:
        context.log.warning(
            f"EM did not converge within {settings.max_iterations} iterations; "
            "parameters are published with convergence_achieved = false"
        )
    value = ItemParameters(
        calibration_run_id=run_id,
        item_bank=eligible_items.item_bank,
        settings=settings,
        item_ids=eligible_items.item_ids,
        result=result,
        started_at=started_at,
        calibration_seconds=seconds,
    )
    return dg.MaterializeResult(
        value=value,
        check_results=[em_converged(value)],
        metadata={
            "calibration_run_id": run_id,
            "items": result.n_items,
            "iterations": int(result.iterations),
            "converged": bool(result.converged),
            "log_likelihood": float(result.log_likelihood),
            "elapsed_seconds": round(seconds, 3),
            "parameter_summary": dg.MetadataValue.md(
                summary_markdown(
                    {"a": result.a, "b": result.b, "c": result.c,
                     "a_se": result.a_se, "b_se": result.b_se, "c_se": result.c_se}
                )
            ),
            **_pictures(context, {
                "convergence_plot": lambda: plots.convergence_plot(
                    result.log_likelihood_trace, result.max_change_trace, settings.convergence_threshold
                ),
            }),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"python", "pandas"},
    owners=OWNERS,
    partitions_def=item_bank_partitions,
    backfill_policy=calibration_backfill_policy,
    pool=POOL,
    check_specs=FIT_STATISTICS_CHECKS,
    dagster_type=dg.PythonObjectDagsterType(FitStatistics),  # the value inside MaterializeResult
)
def fit_statistics(
    context: dg.AssetExecutionContext, eligible_items: EligibleItems, item_parameters: ItemParameters
) -> dg.MaterializeResult:
    """Infit and outfit MNSQ per item, flagged outside 0.7-1.3, joined with the estimates: the
    table of parameter rows to publish, audited here by the blocking parameters_within_bounds
    check (a failure fails this step, so supabase_writes never runs)."""
    if tuple(eligible_items.item_ids) != tuple(item_parameters.item_ids):
        raise errors.CalibrationFailedError(
            "eligible_items changed since item_parameters was computed; "
            "materialize item_parameters again before fit_statistics"
        )
    result = item_parameters.result
    fit = item_fit(eligible_items.matrix, result)
    flagged = fit.flagged(lower=FIT_LOWER, upper=FIT_UPPER)
    table = parameter_table(
        eligible_items.item_ids, result, fit.infit_mnsq, fit.outfit_mnsq, flagged,
        eligible_items.response_counts,
    )
    stats = FitStatistics(
        calibration_run_id=item_parameters.calibration_run_id,
        item_bank=item_parameters.item_bank,
        table=table,
        skipped=eligible_items.skipped,
        convergence_achieved=bool(result.converged),
        iterations_used=int(result.iterations),
        log_likelihood=float(result.log_likelihood),
        started_at=item_parameters.started_at,
    )
    bounds = parameters_within_bounds(stats)
    if not bounds.passed:
        context.log.error(f"publication stopped: {bounds.description}")
    return dg.MaterializeResult(
        value=stats,
        check_results=[bounds, item_fit_within_range(stats)],
        metadata={
            "calibration_run_id": stats.calibration_run_id,
            "items": stats.items_calibrated,
            "items_flagged": stats.items_flagged,
            "flagged_items": id_list(stats.flagged_item_ids),
            "fit_summary": dg.MetadataValue.md(
                summary_markdown({"infit_mnsq": fit.infit_mnsq, "outfit_mnsq": fit.outfit_mnsq})
            ),
            "flagged_items_table": dg.MetadataValue.md(flagged_items_markdown(table)),
            **_pictures(context, {
                "a_vs_b_plot": lambda: plots.parameter_scatter(result.a, result.b, flagged),
                "flagged_icc_plot": lambda: plots.flagged_icc_plot(
                    eligible_items.matrix, result, eligible_items.item_ids,
                    fit.infit_mnsq, fit.outfit_mnsq, flagged,
                ),
            }),
            "dagster/row_count": stats.items_calibrated,
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"postgres", "supabase"},
    owners=OWNERS,
    partitions_def=item_bank_partitions,
    backfill_policy=calibration_backfill_policy,
    pool=POOL,
)
def supabase_writes(
    context: dg.AssetExecutionContext, irt_db: IrtDatabase, fit_statistics: FitStatistics
) -> dg.MaterializeResult:
    """Publishes the calibration in ONE transaction: every irt_item_parameters row (is_flagged,
    response_count, calibrated_at) and the audit row completed with counts, convergence,
    iterations and elapsed seconds (since the row was started)."""
    stats = fit_statistics
    # publish_calibration refuses (CALIBRATION_FAILED, nothing written) a run row that is no
    # longer 'running', e.g. one the failure hook closed before a re-execution from this step.
    elapsed = round(time.time() - stats.started_at, 3)
    written = irt_db.publish_calibration(
        stats.calibration_run_id,
        stats.table,
        items_calibrated=stats.items_calibrated,
        items_skipped=stats.items_skipped,
        items_flagged=stats.items_flagged,
        convergence_achieved=stats.convergence_achieved,
        iterations_used=stats.iterations_used,
        elapsed_seconds=elapsed,
    )
    context.log.info(
        f"calibration run {stats.calibration_run_id} completed: {written} parameter rows, "
        f"{stats.items_skipped} skipped, {stats.items_flagged} flagged"
    )
    return dg.MaterializeResult(
        metadata={
            "calibration_run_id": stats.calibration_run_id,
            "items_calibrated": stats.items_calibrated,
            "items_skipped": stats.items_skipped,
            "items_flagged": stats.items_flagged,
            "convergence_achieved": stats.convergence_achieved,
            "iterations_used": stats.iterations_used,
            "elapsed_seconds": elapsed,
            "dagster/row_count": int(written),
        }
    )


ASSETS = [response_matrix, eligible_items, item_parameters, fit_statistics, supabase_writes]

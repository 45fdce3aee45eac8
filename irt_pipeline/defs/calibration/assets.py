"""The calibration chain of one item bank (one partition = one bank):

    response_matrix -> eligible_items -> item_parameters -> scale_linking -> fit_statistics -> supabase_writes
                                                              scale_linking -> student_abilities -> supabase_writes

``scale_linking`` puts the run on the bank's one scale (engine/linking.py) and
``student_abilities`` scores the run's students on it (engine/abilities.py); both are published
with the parameters. A calibration reads its data in the same run: ``item_parameters`` refuses
a selection without every asset of the chain (an earlier run's stored matrix must never be
published as the newest parameters), and the run row keeps the data watermark of the snapshot
it read. Only the last asset publishes; the blocking check on ``fit_statistics`` audits the table before
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
from irt_pipeline.defs.calibration.backfills import calibration_backfill_policy
from irt_pipeline.defs.calibration.checks import (
    FIT_STATISTICS_CHECKS,
    ITEM_PARAMETERS_CHECKS,
    SCALE_LINKING_CHECKS,
    anchors_stable,
    em_converged,
    item_quality,
    parameters_within_bounds,
)
from irt_pipeline.defs.calibration import plots
from irt_pipeline.defs.calibration.config import CalibrationConfig
from irt_pipeline.defs.calibration.partitions import item_bank_partitions
from irt_pipeline.defs.calibration.reporting import (
    drifted_items_markdown,
    flagged_items_markdown,
    id_list,
    skipped_table,
    summary_markdown,
)
from irt_pipeline.defs.resources import IrtDatabase
from irt_pipeline.defs.calibration.values import (
    REASON_NOT_IN_BANK,
    METHOD_NONE,
    METHOD_STOCKING_LORD,
    EligibleItems,
    FitStatistics,
    ItemParameters,
    ResponseMatrix,
    ScaleLinking,
    StudentAbilities,
    build_response_matrix,
    link_calibration,
    parameter_table,
    select_eligible,
    skipped_reason_counts,
)
from irt_pipeline.engine import calibrate_3pl, item_fit
from irt_pipeline.engine.abilities import eap_abilities
from irt_pipeline.engine.linking import LinkingError
from irt_pipeline.engine.quality import assess_items, reason_counts, se_unavailable
from irt_pipeline.engine.responses import prepare_responses
from irt_pipeline.storage.runs import AbilityRows

GROUP = "irt"
OWNERS = ["team:irt"]
PROGRESS_EVERY = 5        # log the EM progress every this many iterations
# Every asset of the chain: item_parameters starts an audit row that only a run of all of them
# completes from data it read itself (issue 12: no stale publish).
CHAIN = ("response_matrix", "eligible_items", "item_parameters", "scale_linking", "fit_statistics",
         "student_abilities", "supabase_writes")


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


def chain_asset(kinds: set[str], *, check_specs=None, value_type=None):
    """The decorator of an asset of the chain: group, owners, bank partitions and one-bank-per-run
    backfills; `value_type` names the value an asset returns inside a MaterializeResult (with its
    checks).

    No pool: one calibration per bank at a time is the run queue's job, keyed on the bank. Every
    run of one bank carries its partition as a run tag (``dagster/partition``, or
    ``dagster/asset_partition_range_start`` for a run of an asset backfill, one bank per run), and
    both dagster.yaml files limit each value of those tags to one run in progress
    (``tag_concurrency_limits`` with ``applyLimitPerUniqueValue``), while banks run side by side
    up to ``max_concurrent_runs``. The former pool ``irt_calibration`` (default limit 1 at run
    granularity) serialised every bank of the instance; a pool limits a shared resource across
    all runs, it cannot be keyed by partition, and with every run of this location being a
    calibration, ``max_concurrent_runs`` already bounds the load on the database. The database
    guard (one ``running`` audit row per bank) still refuses a second calibration of a bank that
    reaches it by another way (the CLI, ``dg.materialize``, a backfill run and a single run of
    the same bank, which carry different tags)."""
    return dg.asset(
        group_name=GROUP,
        kinds=kinds,
        owners=OWNERS,
        partitions_def=item_bank_partitions,
        backfill_policy=calibration_backfill_policy,
        check_specs=check_specs,
        dagster_type=dg.PythonObjectDagsterType(value_type) if value_type is not None else None,
    )


@chain_asset(kinds={"postgres", "scipy"})
def response_matrix(
    context: dg.AssetExecutionContext, config: CalibrationConfig, irt_db: IrtDatabase
) -> ResponseMatrix:
    """Students x items response matrix of the bank, from the first attempt of each student on
    each item (later attempts are ignored). Sparse CSR, +1 correct / -1 incorrect / absent not
    answered; the bank's items nobody answered are empty columns. Holds the run's config."""
    bank = context.partition_key
    settings = config.settings()
    snapshot = irt_db.read_bank(bank)
    matrix = build_response_matrix(
        snapshot.attempts, snapshot.item_ids, item_bank=bank, settings=settings,
        data_watermark=snapshot.data_watermark, data_read_at=snapshot.data_read_at,
    )
    context.add_output_metadata(
        {
            "data_watermark": snapshot.data_watermark,
            "data_read_at": snapshot.data_read_at.isoformat(),
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


@chain_asset(kinds={"python", "scipy"})
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
            item_bank=eligible.item_bank, config=settings.snapshot(), dagster_run_id=context.run.run_id,
            data_watermark=eligible.data_watermark, data_read_at=eligible.data_read_at,
        )
        irt_db.fail_run(run_id, str(error))
        context.log.error(f"calibration run {run_id} failed: {error}")
        raise error
    return eligible


@chain_asset(kinds={"python", "numpy"}, check_specs=ITEM_PARAMETERS_CHECKS, value_type=ItemParameters)
def item_parameters(
    context: dg.AssetExecutionContext, irt_db: IrtDatabase, eligible_items: EligibleItems
) -> dg.MaterializeResult:
    """3PL estimates (a, b, c and their standard errors) by MML-EM, on this run's scale (its
    students ~ N(0, 1)). Starts the `running` audit row in irt_calibration_runs
    (CALIBRATION_IN_PROGRESS if the bank already has one), with the data watermark of the
    snapshot read by response_matrix; runs only together with every asset of the chain."""
    selected = {key.to_user_string() for key in context.job_def.asset_layer.selected_asset_keys}
    missing = [name for name in CHAIN if name not in selected]
    if missing:
        # the row started here is completed only by supabase_writes, from the data that
        # response_matrix read in this same run: without it, an earlier run's stored matrix
        # would be published as the bank's newest parameters (and become the scale's reference)
        raise errors.ValidationError(
            "item_parameters starts a calibration run that must read its own data and publish it: "
            f"materialize every asset of the chain together ({', '.join(CHAIN)}); missing from this "
            f"run: {', '.join(missing)}"
        )
    settings = eligible_items.settings
    started_at = time.time()
    run_id = irt_db.start_run(
        item_bank=eligible_items.item_bank, config=settings.snapshot(), dagster_run_id=context.run.run_id,
        data_watermark=eligible_items.data_watermark, data_read_at=eligible_items.data_read_at,
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
        se_method=settings.se_method,
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
    if result.se_method != settings.se_method:
        context.log.warning(
            f"se_method {settings.se_method!r} was asked for, but the full information matrix is not "
            f"positive definite: the standard errors are {result.se_method!r} (per-item blocks)"
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
            "se_method": result.se_method,
            "items_at_a_bound": int(result.at_bound.any(axis=1).sum()),
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


@chain_asset(kinds={"postgres", "scipy"}, check_specs=SCALE_LINKING_CHECKS, value_type=ScaleLinking)
def scale_linking(
    context: dg.AssetExecutionContext, irt_db: IrtDatabase, item_parameters: ItemParameters
) -> dg.MaterializeResult:
    """The run on the bank's one scale (engine/linking.py): the bank's first completed run
    defines the scale; later runs are linked to it by Stocking-Lord over the anchors (this run's
    items with a current value on the bank scale), drifted anchors screened out, unless the
    config says `linking: none` (a new scale starts here). Too few anchors: CALIBRATION_FAILED."""
    bank = item_parameters.item_bank
    scale = irt_db.bank_scale(bank, item_parameters.item_ids)
    try:
        linking = link_calibration(item_parameters, scale)
    except LinkingError as exc:
        raise errors.CalibrationFailedError(
            f"cannot link calibration run {item_parameters.calibration_run_id} to the scale of item bank "
            f"{bank!r} (defined by run {scale.scale_run_id}): {exc} (from the command line: "
            "irt-pipeline calibrate --linking none)"
        ) from None
    record = linking.record
    if record.method == METHOD_NONE:
        context.log.warning(
            f"linking: none: calibration run {linking.calibration_run_id} starts a NEW scale for bank {bank!r} "
            "(its students ~ N(0, 1)); earlier parameters are on another scale, later runs link to this one"
        )
    elif record.method == METHOD_STOCKING_LORD:
        context.log.info(
            f"linked to the scale of run {record.scale_run_id}: theta_bank = {record.theta_sd:.4f} theta_run + "
            f"{record.theta_mean:.4f} over {record.anchor_items} anchors ({record.drifted_items} drifted, left out)"
        )
    else:
        context.log.info(f"first completed calibration of bank {bank!r}: this run defines the bank scale")
    result = linking.result
    anchors = linking.is_anchor | linking.is_drifted
    return dg.MaterializeResult(
        value=linking,
        check_results=[anchors_stable(linking)],
        metadata={
            "calibration_run_id": linking.calibration_run_id,
            "linking_method": record.method,
            "scale_run_id": record.scale_run_id or linking.calibration_run_id,
            "A": float(record.theta_sd),
            "B": float(record.theta_mean),
            "anchors_used": record.anchor_items,
            "anchors_dropped": record.drifted_items,
            "new_items": int((~anchors).sum()),
            "drifted_items": id_list(linking.drifted_item_ids),
            "drifted_items_table": dg.MetadataValue.md(drifted_items_markdown(
                linking.item_ids, linking.bank_b, result.b, linking.b_drift, linking.displacement,
                linking.is_drifted)),
            **_pictures(context, {
                "anchor_drift_plot": lambda: plots.anchor_drift_plot(
                    linking.bank_b[anchors], result.b[anchors], linking.is_drifted[anchors],
                    record.theta_sd, record.theta_mean,
                ),
            }),
        },
    )


@chain_asset(kinds={"python", "pandas"}, check_specs=FIT_STATISTICS_CHECKS, value_type=FitStatistics)
def fit_statistics(
    context: dg.AssetExecutionContext, eligible_items: EligibleItems, scale_linking: ScaleLinking
) -> dg.MaterializeResult:
    """Item quality on the linked parameters and grid: predictive infit/outfit MNSQ, item-rest
    correlation, Yen's Q1 with Benjamini-Hochberg (engine/fit.py, engine/quality.py), and the
    reasons for which an item is flagged (thresholds from the run config). Joined with the
    bank-scale estimates into the table of parameter rows to publish, audited here by the
    blocking parameters_within_bounds check (a failure fails this step, so supabase_writes never
    runs); the item_quality check lists the flagged items by reason, with empirical ICCs."""
    _same_items(eligible_items, scale_linking)
    result = scale_linking.result
    thresholds = eligible_items.settings.thresholds
    data = prepare_responses(eligible_items.matrix)
    fit = item_fit(data, result)
    quality = assess_items(data, fit, thresholds, at_bound=result.at_bound,
                           se_unavailable=se_unavailable(result))
    table = parameter_table(eligible_items.item_ids, result, quality, eligible_items.response_counts,
                            linking=scale_linking)
    stats = FitStatistics(
        calibration_run_id=scale_linking.calibration_run_id,
        item_bank=scale_linking.item_bank,
        table=table,
        skipped=eligible_items.skipped,
        convergence_achieved=bool(result.converged),
        iterations_used=int(result.iterations),
        log_likelihood=float(result.log_likelihood),
        started_at=scale_linking.started_at,
        scale=scale_linking.record,
    )
    bounds = parameters_within_bounds(stats)
    if not bounds.passed:
        context.log.error(f"publication stopped: {bounds.description}")
    flagged = quality.is_flagged
    return dg.MaterializeResult(
        value=stats,
        check_results=[bounds, item_quality(stats)],
        metadata={
            "calibration_run_id": stats.calibration_run_id,
            "items": stats.items_calibrated,
            "items_flagged": stats.items_flagged,
            "flagged_by_reason": dg.MetadataValue.json(reason_counts(quality.reasons)),
            "flagged_items": id_list(stats.flagged_item_ids),
            "fit_summary": dg.MetadataValue.md(summary_markdown({
                "infit_mnsq": quality.infit_mnsq, "outfit_mnsq": quality.outfit_mnsq,
                "item_rest_corr": quality.item_rest, "q1_p_value": quality.grouped.p_value,
            })),
            "flagged_items_table": dg.MetadataValue.md(flagged_items_markdown(table)),
            **_pictures(context, {
                "a_vs_b_plot": lambda: plots.parameter_scatter(result.a, result.b, flagged),
                "empirical_icc_plot": lambda: plots.empirical_icc_plot(
                    result, eligible_items.item_ids, quality),
            }),
            "dagster/row_count": stats.items_calibrated,
        },
    )


@chain_asset(kinds={"python", "numpy"})
def student_abilities(
    context: dg.AssetExecutionContext, eligible_items: EligibleItems, scale_linking: ScaleLinking
) -> StudentAbilities:
    """EAP ability and posterior SD of every student of the run, on the bank scale (Bock &
    Mislevy 1982; engine/abilities.py), published with the parameters by supabase_writes."""
    _same_items(eligible_items, scale_linking)
    scores = eap_abilities(eligible_items.matrix, scale_linking.result)
    value = StudentAbilities(
        calibration_run_id=scale_linking.calibration_run_id,
        item_bank=scale_linking.item_bank,
        student_ids=eligible_items.student_ids,
        abilities=scores,
    )
    context.add_output_metadata({
        "calibration_run_id": value.calibration_run_id,
        "students": scores.n_students,
        "theta_mean": float(scores.theta.mean()) if scores.n_students else float("nan"),
        "theta_sd": float(scores.theta.std()) if scores.n_students else float("nan"),
        "ability_summary": dg.MetadataValue.md(
            summary_markdown({"theta": scores.theta, "theta_se": scores.theta_se})
        ),
        "dagster/row_count": scores.n_students,
        **_pictures(context, {
            "wright_map": lambda: plots.wright_map(scores.theta, scale_linking.result.b),
        }),
    })
    return value


@chain_asset(kinds={"postgres", "supabase"})
def supabase_writes(
    context: dg.AssetExecutionContext,
    irt_db: IrtDatabase,
    fit_statistics: FitStatistics,
    student_abilities: StudentAbilities,
) -> dg.MaterializeResult:
    """Publishes the calibration in ONE transaction: every irt_item_parameters row (is_flagged,
    response_count, calibrated_at, anchor and drift columns), every irt_student_abilities row,
    and the audit row completed with counts, convergence, iterations, elapsed seconds (since the
    row was started) and the scale columns. Refused, with nothing written, when a completed run
    of the bank read newer data, or the bank's scale changed since this run was linked."""
    stats = fit_statistics
    if student_abilities.calibration_run_id != stats.calibration_run_id:
        raise errors.CalibrationFailedError(
            f"student_abilities belong to calibration run {student_abilities.calibration_run_id}, the "
            f"parameters to {stats.calibration_run_id}: materialize the whole chain in one run"
        )
    scores = student_abilities.abilities
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
        scale=stats.scale,
        abilities=AbilityRows(student_abilities.student_ids, scores.theta, scores.theta_se,
                              scores.response_counts),
    )
    context.log.info(
        f"calibration run {stats.calibration_run_id} completed: {written} parameter rows, "
        f"{scores.n_students} student abilities, {stats.items_skipped} skipped, {stats.items_flagged} flagged"
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
            "student_abilities": scores.n_students,
            "dagster/row_count": int(written),
        }
    )


def _same_items(eligible_items: EligibleItems, scale_linking: ScaleLinking) -> None:
    if tuple(eligible_items.item_ids) != tuple(scale_linking.item_ids):
        raise errors.CalibrationFailedError(
            "eligible_items changed since item_parameters was computed; "
            "materialize the whole chain again from response_matrix"
        )


ASSETS = [response_matrix, eligible_items, item_parameters, scale_linking, fit_statistics,
          student_abilities, supabase_writes]

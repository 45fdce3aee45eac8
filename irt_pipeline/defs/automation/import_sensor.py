"""`exam_import_sensor`: calibrate every item bank an exam import touched, once the import is done.

Why a cursor on ``student_attempts.id`` (and no ``exam_imports`` table): the import story
(F-69) owns the upstream tables and may load attempts by any means (its importer, COPY, SQL);
every attempt gets an ever-growing identity id, so following that id sees every loader without
asking any of them to write a marker row. ``exam_import_id`` is not needed either.

Each tick (every 60 s at most; STOPPED until turned on in the UI or with
``dagster sensor start exam_import_sensor``):

1. ``max(id)`` of student_attempts. Not above the handled id: skip ("no new attempts"),
   cursor unchanged.
2. A new ``max(id)`` restarts the quiet clock (the time it was first seen goes in the cursor).
3. Read one bounded page (``max_attempts_per_tick`` rows) of the attempts not read yet and add
   their item banks to the cursor: a large import is read over several ticks.
4. Until everything is read AND ``max(id)`` has not moved for ``quiet_minutes``: skip with the
   reason, request nothing (a half-loaded import never triggers a calibration).
5. Then: add the new banks as ``item_bank`` partitions, one run request of `calibration_job`
   per touched bank (run key ``exam-import:<max id>:<bank>``, config validated first), and move
   the handled id to ``max(id)``.

The cursor is returned with the result, never written early, so a failing tick is retried
from the same place. Limitation of any id cursor: a transaction that stays open while a later
one commits makes ids appear out of order; attempts of such a transaction that commits more
than ``quiet_minutes`` after the later one are not seen by this sensor (the weekly schedule
recalibrates every bank regardless).
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at import time.
import time

import dagster as dg

from irt_pipeline.defs.automation.automation_settings import ExamImportSettings
from irt_pipeline.defs.automation.import_cursor import ImportCursor
from irt_pipeline.defs.automation.run_requests import automation_run_config, bank_run_requests, repository_of
from irt_pipeline.defs.calibration.jobs import calibration_job
from irt_pipeline.defs.calibration.partitions import ITEM_BANK_PARTITIONS_NAME, item_bank_partitions
from irt_pipeline.defs.resources import IrtDatabase
from irt_pipeline.storage.attempt_feed import latest_attempt_id, scan_attempts

SENSOR_NAME = "exam_import_sensor"
TRIGGER = "exam_import"
ATTEMPTS_THROUGH_TAG = "irt/attempts_through_id"


@dg.sensor(
    name=SENSOR_NAME,
    job=calibration_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Calibrates each item bank touched by new student_attempts once the import has gone quiet.",
)
def exam_import_sensor(
    context: dg.SensorEvaluationContext, irt_db: IrtDatabase, exam_imports: ExamImportSettings
) -> dg.SensorResult:
    unready = irt_db.unready_reason()
    if unready is not None:
        return dg.SensorResult(skip_reason=unready)
    now = time.time()
    cursor = ImportCursor.parse(context.cursor)
    with irt_db.connection() as conn:
        latest = latest_attempt_id(conn)
        if latest <= cursor.handled_id:
            return dg.SensorResult(skip_reason=f"no new attempts after id {cursor.handled_id}")
        cursor = cursor.observe(latest, now)
        if cursor.scanned_id < latest:
            page = scan_attempts(
                conn, after_id=cursor.scanned_id, upto_id=latest, limit=exam_imports.max_attempts_per_tick
            )
            cursor = cursor.scanned(page.last_id, page.banks)
            context.log.info(
                f"read {page.attempts} attempts up to id {page.last_id} of {latest}; "
                f"banks so far: {', '.join(cursor.banks) or 'none'}"
            )

    if cursor.scanned_id < latest:
        return dg.SensorResult(
            skip_reason=f"read attempts up to id {cursor.scanned_id} of {latest}; the rest next tick",
            cursor=cursor.serialize(),
        )
    quiet_seconds = 60 * exam_imports.quiet_minutes
    waited = cursor.quiet_for(now)
    if waited < quiet_seconds:
        return dg.SensorResult(
            skip_reason=(
                f"import still arriving: newest attempt id {latest} seen {waited:.0f} s ago, waiting until "
                f"no attempt has been added for {exam_imports.quiet_minutes} min (banks: {', '.join(cursor.banks)})"
            ),
            cursor=cursor.serialize(),
        )
    if not cursor.banks:  # the new attempts were deleted again before anyone read them
        return dg.SensorResult(skip_reason=f"no bank touched by attempts up to id {latest}",
                               cursor=cursor.handled().serialize())

    run_config = automation_run_config(repository_of(context))
    requests = bank_run_requests(
        cursor.banks,
        run_key_prefix=f"{TRIGGER}:{latest}",
        trigger=TRIGGER,
        run_config=run_config,
        tags={ATTEMPTS_THROUGH_TAG: str(latest)},
    )
    new_banks = [b for b in cursor.banks if not context.instance.has_dynamic_partition(ITEM_BANK_PARTITIONS_NAME, b)]
    context.log.info(
        f"import through attempt id {latest} quiet for {waited:.0f} s: calibrating {', '.join(cursor.banks)}"
    )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[item_bank_partitions.build_add_request(new_banks)] if new_banks else [],
        cursor=cursor.handled().serialize(),
    )

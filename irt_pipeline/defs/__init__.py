"""The Dagster layer of irt-pipeline, autoloaded by ``irt_pipeline.definitions``.

Modules:
  partitions, resources, config    the item-bank partitions, the database resource, the run config
  values, assets, checks           what the assets hand each other, the five assets, their checks
  reporting, plots                 metadata tables and matplotlib pictures of the assets
  backfills, jobs                  the backfill policy and ``calibration_job``
  hooks, failures, sensors         failure bookkeeping: the failure hook, coded messages, the
                                   run-failure and run-canceled sensors
  stale_runs                       the sensor that fails audit rows whose owner is gone
  import_cursor, import_sensor,    ``exam_import_sensor`` (cursor on student_attempts.id) and
  run_requests, automation_settings  the run requests it and the schedule build, with their settings
  schedules                        ``weekly_recalibration``
  launch                           the ``irt-pipeline calibrate`` command (no Dagster objects)
"""

"""The Dagster layer of irt-pipeline, autoloaded by ``irt_pipeline.definitions``, by concern:

  resources      the database resource (``irt_db``), shared by all
  calibration/   the item-bank partitions, the run config, the assets, their checks, their
                 pictures, the backfill policy and ``calibration_job``
  automation/    ``exam_import_sensor`` (with its settings resource) and ``weekly_recalibration``,
                 and the run requests they build
  operations/    failure bookkeeping (hook, coded messages, run-status sensors), the stale-run
                 sweeper and the ``irt-pipeline calibrate`` command
"""

"""Operations: what keeps runs honest when something goes wrong, and the command line.

  hooks, failures         the failure hook and the coded messages of a failed run
  run_status_sensors      the run-failure and run-canceled sensors (close the audit row)
  stale_runs              the sensor that fails audit rows whose owner is gone
  launch                  the ``irt-pipeline calibrate`` command (no Dagster objects)
"""

"""Automation: when a bank is recalibrated without anybody launching it.

  import_cursor, import_sensor   ``exam_import_sensor`` and its cursor on student_attempts.id
  run_requests                   the run requests the sensor and the schedule build
  automation_settings            the sensor's settings from environment variables, as the
                                 ``exam_imports`` resource
  schedules                      ``weekly_recalibration``
"""

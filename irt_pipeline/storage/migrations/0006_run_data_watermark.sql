-- Migration: the data a run read (issue 12, no stale publish)
--
-- data_watermark: the highest student_attempts.id of the bank's attempts the run read (0 when it
--   read none), taken in the same REPEATABLE READ snapshot as the attempts themselves.
-- data_read_at: when that snapshot was taken.
-- A run is refused publication (CALIBRATION_FAILED, nothing written) when a completed run of the
-- same bank read newer data (a higher watermark): re-executing the later steps of an old run
-- can never make its older data the bank's latest parameters.
ALTER TABLE irt_calibration_runs ADD COLUMN IF NOT EXISTS data_watermark BIGINT;
ALTER TABLE irt_calibration_runs ADD COLUMN IF NOT EXISTS data_read_at TIMESTAMPTZ;

-- Issue 10: item diagnostics you can trust. Idempotent: safe to apply again.
--
-- Standard errors become nullable: a parameter held at its bound (c = 0, a slope at 0.2 or 3)
-- has no standard error, and neither has any parameter of an item whose information matrix is
-- singular. NULL says so; a number there would invent precision (the brief's a_se, b_se and
-- c_se were NOT NULL).
ALTER TABLE irt_item_parameters ALTER COLUMN a_se DROP NOT NULL;
ALTER TABLE irt_item_parameters ALTER COLUMN b_se DROP NOT NULL;
ALTER TABLE irt_item_parameters ALTER COLUMN c_se DROP NOT NULL;

-- Why an item is flagged: is_flagged is true exactly when flag_reasons is not empty.
--   infit, outfit        predictive mean square outside the run's limits (default 0.7-1.3)
--   possible_miskey      item-rest correlation significantly below 0
--   low_discrimination   item-rest correlation below the run's limit (default 0.10)
--   model_misfit         Q1 grouped fit test, Benjamini-Hochberg adjusted p below the run's level
--   at_bound             a parameter at its bound (its standard error is NULL)
--   se_unavailable       singular information: no standard error at all
ALTER TABLE irt_item_parameters ADD COLUMN IF NOT EXISTS flag_reasons TEXT[] NOT NULL DEFAULT '{}';
-- The engine's status of the item: ok, heywood (slope at its upper bound), singular_information
-- (and all_correct, all_incorrect, no_responses, which eligible_items never lets through).
ALTER TABLE irt_item_parameters ADD COLUMN IF NOT EXISTS item_status TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE irt_item_parameters ADD COLUMN IF NOT EXISTS item_rest_corr FLOAT;
ALTER TABLE irt_item_parameters ADD COLUMN IF NOT EXISTS q1_statistic FLOAT;
ALTER TABLE irt_item_parameters ADD COLUMN IF NOT EXISTS q1_df FLOAT;
ALTER TABLE irt_item_parameters ADD COLUMN IF NOT EXISTS q1_p_value FLOAT;
ALTER TABLE irt_item_parameters ADD COLUMN IF NOT EXISTS q1_p_adjusted FLOAT;

-- Rows written before this migration were flagged for their mean squares only, at 0.7-1.3.
UPDATE irt_item_parameters
SET flag_reasons = array_remove(ARRAY[
      CASE WHEN infit_mnsq < 0.7 OR infit_mnsq > 1.3 THEN 'infit' END,
      CASE WHEN outfit_mnsq < 0.7 OR outfit_mnsq > 1.3 THEN 'outfit' END], NULL)
WHERE is_flagged AND cardinality(flag_reasons) = 0;
UPDATE irt_item_parameters SET flag_reasons = ARRAY['infit']
WHERE is_flagged AND cardinality(flag_reasons) = 0;   -- (none expected; keeps the rule below)

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'irt_item_parameters_flag_reasons_known') THEN
    ALTER TABLE irt_item_parameters ADD CONSTRAINT irt_item_parameters_flag_reasons_known CHECK (
      flag_reasons <@ ARRAY['infit', 'outfit', 'possible_miskey', 'low_discrimination',
                            'model_misfit', 'at_bound', 'se_unavailable']::TEXT[]);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'irt_item_parameters_flagged_has_reason') THEN
    ALTER TABLE irt_item_parameters ADD CONSTRAINT irt_item_parameters_flagged_has_reason CHECK (
      is_flagged = (cardinality(flag_reasons) > 0));
  END IF;
END
$$;

-- The latest-parameters view gains the new columns (appended: CREATE OR REPLACE VIEW may only
-- add columns at the end).
CREATE OR REPLACE VIEW irt_item_parameters_latest WITH (security_invoker = true) AS
SELECT DISTINCT ON (p.item_id)
  p.item_id,
  p.a,
  p.b,
  p.c,
  p.a_se,
  p.b_se,
  p.c_se,
  p.infit_mnsq,
  p.outfit_mnsq,
  p.is_flagged,
  p.response_count,
  p.calibrated_at,
  p.calibration_run_id,
  p.is_anchor,
  p.is_drifted,
  p.b_drift,
  r.scale_run_id,
  p.flag_reasons,
  p.item_status,
  p.item_rest_corr,
  p.q1_statistic,
  p.q1_df,
  p.q1_p_value,
  p.q1_p_adjusted
FROM irt_item_parameters p
JOIN irt_calibration_runs r ON r.id = p.calibration_run_id AND r.status = 'completed'
ORDER BY p.item_id, p.calibrated_at DESC, p.created_at DESC;

GRANT SELECT ON irt_item_parameters_latest TO service_role;
REVOKE ALL ON irt_item_parameters_latest FROM anon, authenticated;

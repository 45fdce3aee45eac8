-- Migration: one scale per item bank (issue 9): linking columns, student abilities
--
-- The first completed run of a bank defines the bank's scale (theta ~ N(0, 1) for its students);
-- every later run is linked to it (Stocking-Lord over the anchor items, irt_pipeline/engine/
-- linking.py), so a, b, c and their SEs in irt_item_parameters are on the bank scale.
-- Idempotent (IF NOT EXISTS everywhere) and Supabase-safe (RLS, revokes, security_invoker view).

-- ---------------------------------------------------------------------------------------------
-- Runs: how the run was put on the bank scale
-- ---------------------------------------------------------------------------------------------
-- linking_method: 'initial' (the bank's first completed run: defines its scale), 'stocking_lord'
--   (linked to the bank scale over anchor items), 'none' (asked for a new scale: this run
--   defines it). NULL for runs from before this migration and for runs that failed before linking.
-- scale_run_id: the run that defined the scale this run is on (itself for 'initial' and 'none').
-- theta_mean, theta_sd: this run's students on the bank scale (B and A of theta_bank = A theta + B).
-- anchor_items: anchors used for the link (after the drift screen); drifted_items: anchors
--   the screen dropped.
ALTER TABLE irt_calibration_runs ADD COLUMN IF NOT EXISTS linking_method TEXT
  CHECK (linking_method IN ('initial', 'stocking_lord', 'none'));
ALTER TABLE irt_calibration_runs ADD COLUMN IF NOT EXISTS scale_run_id UUID
  REFERENCES irt_calibration_runs(id) ON DELETE RESTRICT;
ALTER TABLE irt_calibration_runs ADD COLUMN IF NOT EXISTS theta_mean FLOAT;
ALTER TABLE irt_calibration_runs ADD COLUMN IF NOT EXISTS theta_sd FLOAT;
ALTER TABLE irt_calibration_runs ADD COLUMN IF NOT EXISTS anchor_items INT NOT NULL DEFAULT 0;
ALTER TABLE irt_calibration_runs ADD COLUMN IF NOT EXISTS drifted_items INT NOT NULL DEFAULT 0;

-- The bank's current scale: the latest completed run of the bank (its scale_run_id).
CREATE INDEX IF NOT EXISTS idx_irt_runs_bank_completed
  ON irt_calibration_runs(item_bank, completed_at DESC) WHERE status = 'completed';

-- ---------------------------------------------------------------------------------------------
-- Item parameters: anchor role and drift
-- ---------------------------------------------------------------------------------------------
-- is_anchor: the item had a bank value on the run's scale and was used to link the run.
-- is_drifted: it had one, but its curve moved too far for the run's students (robust z > 2.7 and
--   more than 0.25 logits, engine/linking.py) and it was dropped from the anchor set; its new,
--   linked estimates are published all the same.
-- b_drift: linked b minus the item's previous bank value (NULL for an item new to the scale).
ALTER TABLE irt_item_parameters ADD COLUMN IF NOT EXISTS is_anchor BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE irt_item_parameters ADD COLUMN IF NOT EXISTS is_drifted BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE irt_item_parameters ADD COLUMN IF NOT EXISTS b_drift FLOAT;

-- ---------------------------------------------------------------------------------------------
-- Student abilities: EAP theta and posterior SD of each student of a run, on the bank scale
-- ---------------------------------------------------------------------------------------------
-- The key is (run, student): one row per student per run, and the index that the publication's
-- delete, the run's reads and the foreign key's cascade need. No surrogate id: a run writes
-- 100,000 students at once, and every extra index is paid on each of them.
CREATE TABLE IF NOT EXISTS irt_student_abilities (
  calibration_run_id UUID NOT NULL REFERENCES irt_calibration_runs(id) ON DELETE CASCADE,
  student_id UUID NOT NULL,
  item_bank TEXT NOT NULL,
  theta FLOAT NOT NULL,             -- EAP on the bank scale (Bock & Mislevy 1982)
  theta_se FLOAT NOT NULL,          -- posterior standard deviation, on the bank scale
  response_count INT NOT NULL,      -- first attempts of the student on the run's items
  estimated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (calibration_run_id, student_id)
);

-- A student's latest ability per bank (the view below, `irt-pipeline ability`).
CREATE INDEX IF NOT EXISTS idx_irt_abilities_student_bank
  ON irt_student_abilities(student_id, item_bank, estimated_at DESC);

ALTER TABLE irt_student_abilities ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
  IF NOT EXISTS (
    SELECT FROM pg_policies
    WHERE tablename = 'irt_student_abilities' AND policyname = 'Service role full access on irt_student_abilities'
  ) THEN
    CREATE POLICY "Service role full access on irt_student_abilities"
      ON irt_student_abilities
      FOR ALL
      TO service_role
      USING (auth.role() = 'service_role')
      WITH CHECK (auth.role() = 'service_role');
  END IF;
END
$$;

-- Each student's latest ability per bank, from completed runs only; security_invoker so that
-- RLS applies to whoever queries it (see irt_item_parameters_latest in 0003).
CREATE OR REPLACE VIEW irt_student_abilities_latest WITH (security_invoker = true) AS
SELECT DISTINCT ON (s.student_id, s.item_bank)
  s.student_id,
  s.item_bank,
  s.theta,
  s.theta_se,
  s.response_count,
  s.estimated_at,
  s.calibration_run_id
FROM irt_student_abilities s
JOIN irt_calibration_runs r ON r.id = s.calibration_run_id AND r.status = 'completed'
ORDER BY s.student_id, s.item_bank, s.estimated_at DESC, s.created_at DESC;

-- The latest-parameters view gains the new columns. Dropped and created rather than replaced,
-- so that this file can run again after a later migration appended columns (0008).
DROP VIEW IF EXISTS irt_item_parameters_latest;
CREATE VIEW irt_item_parameters_latest WITH (security_invoker = true) AS
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
  r.scale_run_id
FROM irt_item_parameters p
JOIN irt_calibration_runs r ON r.id = p.calibration_run_id AND r.status = 'completed'
ORDER BY p.item_id, p.calibrated_at DESC, p.created_at DESC;

GRANT SELECT, INSERT, UPDATE, DELETE ON irt_student_abilities TO service_role;
GRANT SELECT ON irt_student_abilities_latest, irt_item_parameters_latest TO service_role;
REVOKE ALL ON irt_student_abilities, irt_student_abilities_latest, irt_item_parameters_latest
  FROM anon, authenticated;

-- Migration: create_irt_calibration_tables
-- IRT 3PL item parameter storage and calibration run audit trail
-- (brief STORY-ST-4 section 4, verbatim; the additions a real deployment needs follow it)

CREATE TABLE irt_calibration_runs (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  completed_at TIMESTAMPTZ,
  status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
  items_calibrated INT NOT NULL DEFAULT 0,
  items_skipped INT NOT NULL DEFAULT 0,
  items_flagged INT NOT NULL DEFAULT 0,
  convergence_achieved BOOLEAN NOT NULL DEFAULT false,
  iterations_used INT NOT NULL DEFAULT 0,
  elapsed_seconds FLOAT NOT NULL DEFAULT 0,
  config JSONB NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE irt_item_parameters (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  item_id UUID NOT NULL REFERENCES items(id) ON DELETE CASCADE,
  calibration_run_id UUID NOT NULL REFERENCES irt_calibration_runs(id) ON DELETE CASCADE,
  a FLOAT NOT NULL,                -- discrimination
  b FLOAT NOT NULL,                -- difficulty
  c FLOAT NOT NULL,                -- guessing
  a_se FLOAT NOT NULL,             -- standard error of a
  b_se FLOAT NOT NULL,             -- standard error of b
  c_se FLOAT NOT NULL,             -- standard error of c
  infit_mnsq FLOAT NOT NULL,
  outfit_mnsq FLOAT NOT NULL,
  is_flagged BOOLEAN NOT NULL DEFAULT false,
  response_count INT NOT NULL,
  calibrated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Indexes for efficient lookups
CREATE INDEX idx_irt_params_item_id ON irt_item_parameters(item_id);
CREATE INDEX idx_irt_params_calibration_run ON irt_item_parameters(calibration_run_id);
CREATE INDEX idx_irt_params_flagged ON irt_item_parameters(is_flagged) WHERE is_flagged = true;

-- Unique constraint: one parameter set per item per calibration run
CREATE UNIQUE INDEX idx_irt_params_item_run ON irt_item_parameters(item_id, calibration_run_id);

-- Latest parameters view helper
CREATE INDEX idx_irt_params_item_calibrated ON irt_item_parameters(item_id, calibrated_at DESC);

-- Calibration run status index
CREATE INDEX idx_irt_runs_status ON irt_calibration_runs(status);

-- RLS policies
ALTER TABLE irt_calibration_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE irt_item_parameters ENABLE ROW LEVEL SECURITY;

-- Only service role can read/write calibration data (system-level operation)
CREATE POLICY "Service role full access on irt_calibration_runs"
  ON irt_calibration_runs
  FOR ALL
  USING (auth.role() = 'service_role')
  WITH CHECK (auth.role() = 'service_role');

CREATE POLICY "Service role full access on irt_item_parameters"
  ON irt_item_parameters
  FOR ALL
  USING (auth.role() = 'service_role')
  WITH CHECK (auth.role() = 'service_role');

-- ---------------------------------------------------------------------------------------------
-- Additions for a real deployment
-- ---------------------------------------------------------------------------------------------

-- Calibrations run per item bank (the pipeline's partition): the audit trail must say which
-- bank a run calibrated, and "one calibration at a time" holds per bank, not globally.
ALTER TABLE irt_calibration_runs ADD COLUMN item_bank TEXT NOT NULL DEFAULT 'default';

-- The orchestrator's run that owns this row: a run that dies (crash, cancel, lost worker)
-- cannot mark its own row failed, so the failure hook/sensor finds the row by this id.
ALTER TABLE irt_calibration_runs ADD COLUMN dagster_run_id TEXT;

-- Why a run failed; the brief's status 'failed' alone does not tell an operator what to fix.
ALTER TABLE irt_calibration_runs ADD COLUMN error TEXT;

-- CALIBRATION_IN_PROGRESS (409) enforced by the database, not by a read-then-insert race:
-- at most one 'running' row per bank, whichever process or orchestrator starts the run.
CREATE UNIQUE INDEX idx_irt_runs_one_running_per_bank
  ON irt_calibration_runs(item_bank) WHERE status = 'running';

-- The audit trail of one bank, newest first.
CREATE INDEX idx_irt_runs_bank_started ON irt_calibration_runs(item_bank, started_at DESC);

-- GET /api/irt/parameters/:item_id: the latest parameters of each item, taken only from
-- completed runs (a running or failed run's rows are never served). security_invoker makes the
-- view check RLS as the querying role: a plain view runs as its owner, which bypasses RLS, and
-- would hand every row to anon/authenticated through the Supabase API.
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
  p.calibration_run_id
FROM irt_item_parameters p
JOIN irt_calibration_runs r ON r.id = p.calibration_run_id AND r.status = 'completed'
ORDER BY p.item_id, p.calibrated_at DESC, p.created_at DESC;

-- The API role the pipeline (or the FastAPI service) uses on Supabase. anon and authenticated
-- get nothing here: whatever Supabase's default privileges give them, RLS shows them no row.
GRANT SELECT, INSERT, UPDATE, DELETE ON irt_calibration_runs, irt_item_parameters TO service_role;
GRANT SELECT ON irt_item_parameters_latest TO service_role;

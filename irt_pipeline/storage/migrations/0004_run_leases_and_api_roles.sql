-- Migration: run leases and API-role hardening (issue 5, reliability)

-- ---------------------------------------------------------------------------------------------
-- Run leases: telling a dead 'running' row from a live one
-- ---------------------------------------------------------------------------------------------
-- A run process killed with SIGKILL (or a lost machine) cannot mark its own row failed, and the
-- partial unique index on running rows would then refuse every later calibration of the bank.
-- The process that starts a run holds a session-level advisory lock keyed by the run id (the
-- "lease", see irt_pipeline/storage/runs.py); the server drops it the moment that session ends,
-- so a running row whose lock nobody holds has lost its owner. Between two steps of a run that
-- executes each step in its own process (Dagster's multiprocess executor) the lock is released
-- on purpose and this column records when: the row is then alive for a grace period, waiting
-- for the next step. NULL while the lock is held (or for a row whose owner died holding it).
ALTER TABLE irt_calibration_runs ADD COLUMN IF NOT EXISTS lease_handed_over_at TIMESTAMPTZ;

-- The sweeper looks at running rows only; idx_irt_runs_status serves it.

-- ---------------------------------------------------------------------------------------------
-- API roles: only the service may see calibration data, whatever the JWT claims say
-- ---------------------------------------------------------------------------------------------
-- The brief's policies test auth.role() = 'service_role', i.e. the JWT claim. A session that is
-- already `anon` or `authenticated` can set request.jwt.claims itself (set_config is open to
-- every role), so the claim alone is not proof. Binding the policies to the database role
-- service_role keeps the brief's condition and adds that one: anon and authenticated match no
-- policy at all (RLS then shows them nothing and refuses every write). On Supabase
-- service_role has BYPASSRLS and is not affected; the pipeline writes as the tables' owner.
ALTER POLICY "Service role full access on irt_calibration_runs" ON irt_calibration_runs TO service_role;
ALTER POLICY "Service role full access on irt_item_parameters" ON irt_item_parameters TO service_role;

-- Supabase's default privileges grant every new table and view in public to anon and
-- authenticated; take those grants back, so that these roles are refused outright (permission
-- denied) instead of relying on RLS alone. Harmless on plain PostgreSQL, where they had none.
REVOKE ALL ON irt_calibration_runs, irt_item_parameters, irt_item_parameters_latest FROM anon, authenticated;
REVOKE ALL ON irt_schema_migrations FROM anon, authenticated;

// The brief's JSON examples (STORY-ST-4, section 5) must type-check against the generated types.
import type {
  IrtCalibrationRequest,
  IrtCalibrationResponse,
  IrtCalibrationRun,
  IrtEnvelope,
  IrtItemParameters,
} from "../src";

const request: IrtCalibrationRequest = {
  item_ids: ["uuid-1", "uuid-2"],
  min_responses: 100,
  max_iterations: 100,
  convergence_threshold: 0.001,
};
const emptyRequest: IrtCalibrationRequest = {};

const parameters: IrtItemParameters = {
  item_id: "uuid-1", a: 1.24, b: -0.56, c: 0.18, a_se: 0.12, b_se: 0.08, c_se: 0.03,
  infit_mnsq: 1.02, outfit_mnsq: 0.98, is_flagged: false, response_count: 312,
  calibrated_at: "2026-02-19T10:30:00Z", calibration_run_id: "run-uuid-1",
};

const calibrated: IrtEnvelope<IrtCalibrationResponse> = {
  data: {
    calibration_run_id: "run-uuid-1", items_calibrated: 847, items_skipped: 153, items_flagged: 12,
    convergence_achieved: true, iterations_used: 42, elapsed_seconds: 38.7,
    parameters: [parameters],
    skipped_items: [{ item_id: "uuid-skip-1", reason: "insufficient_responses", response_count: 42 }],
  },
  error: null,
};

const inProgress: IrtEnvelope<IrtCalibrationResponse> = {
  data: null,
  error: { code: "CALIBRATION_IN_PROGRESS", message: "another calibration of bank 'demo' is running" },
};

const run: IrtCalibrationRun = {
  id: "run-uuid-1", started_at: "2026-02-19T10:29:21Z", completed_at: null, status: "running",
  items_calibrated: 0, items_skipped: 0, items_flagged: 0, convergence_achieved: false,
  iterations_used: 0, elapsed_seconds: 0,
  config: { min_responses: 100, max_iterations: 100, convergence_threshold: 0.001, model: "3pl" },
};

export const examples = [request, emptyRequest, calibrated, inProgress, run];

// The brief's JSON examples (STORY-ST-4, section 5) must type-check against the generated types.
import type {
  IrtCalibrationRequest,
  IrtCalibrationResponse,
  IrtCalibrationRun,
  IrtEnvelope,
  IrtItemParameters,
  IrtStudentAbility,
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
  // not the brief's: the item diagnostics (issue 10)
  flag_reasons: [], item_status: "ok", item_rest_corr: 0.41, q1_statistic: 6.2, q1_df: 7.5,
  q1_p_value: 0.58, q1_p_adjusted: 0.97,
};

// Issue 10: c at its bound has no standard error; the item is flagged for it.
const atBound: IrtItemParameters = {
  ...parameters, c: 0, c_se: null, is_flagged: true, flag_reasons: ["at_bound"],
};

const calibrated: IrtEnvelope<IrtCalibrationResponse> = {
  data: {
    calibration_run_id: "run-uuid-1", items_calibrated: 847, items_skipped: 153, items_flagged: 12,
    convergence_achieved: true, iterations_used: 42, elapsed_seconds: 38.7,
    parameters: [parameters, atBound],
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
  // not the brief's: the bank scale (issue 9) and the data the run read
  linking_method: null, scale_run_id: null, theta_mean: null, theta_sd: null,
  anchor_items: 0, drifted_items: 0, data_watermark: 1204, data_read_at: "2026-02-19T10:29:20Z",
};

const linked: IrtCalibrationRun = {
  ...run, completed_at: "2026-02-19T10:30:00Z", status: "completed",
  linking_method: "stocking_lord", scale_run_id: "run-uuid-0", theta_mean: 0.7, theta_sd: 1.05,
  anchor_items: 97, drifted_items: 3,
};

// Not the brief's: `irt-pipeline ability <student-uuid> --bank B` (issue 9).
const ability: IrtEnvelope<IrtStudentAbility> = {
  data: {
    student_id: "student-uuid-1", item_bank: "demo", theta: 0.42, theta_se: 0.31, response_count: 25,
    estimated_at: "2026-02-19T10:30:00Z", calibration_run_id: "run-uuid-1",
  },
  error: null,
};

const studentNotFound: IrtEnvelope<IrtStudentAbility> = {
  data: null,
  error: { code: "STUDENT_NOT_FOUND", message: "no ability of student student-uuid-2 on item bank 'demo'" },
};

export const examples = [request, emptyRequest, calibrated, inProgress, run, linked, ability, studentNotFound];

-- The upstream tables of the exam-import story (STORY-F-69), created only when missing so that a
-- development database can hold attempts. Where F-69 has created them (Supabase), they are left
-- exactly as they are: F-69 owns their columns, indexes, grants and RLS.

CREATE TABLE IF NOT EXISTS items (
  id UUID PRIMARY KEY,
  item_bank TEXT NOT NULL DEFAULT 'default',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_items_item_bank ON items(item_bank);

CREATE TABLE IF NOT EXISTS student_attempts (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  student_id UUID NOT NULL,
  item_id UUID NOT NULL REFERENCES items(id),
  correct BOOLEAN NOT NULL,
  attempted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  exam_import_id UUID NULL
);

CREATE INDEX IF NOT EXISTS idx_student_attempts_item_id ON student_attempts(item_id);

-- Serves the first-attempt rule: DISTINCT ON (student_id, item_id) ORDER BY attempted_at, id.
CREATE INDEX IF NOT EXISTS idx_student_attempts_first
  ON student_attempts(student_id, item_id, attempted_at, id);

-- The upstream tables of the exam-import story (STORY-F-69), created only when missing so that a
-- development database can hold attempts. Where F-69 has created them (Supabase), they are left
-- exactly as they are: F-69 owns their columns, indexes, grants and RLS (no index is built on
-- them here either: building one inside this transaction would block its imports and needs
-- ownership; the README's data contract lists the indexes F-69 should have).
--
-- Created here, they are safe on a Supabase project, whose default privileges grant every new
-- table and sequence in public to anon and authenticated (TRUNCATE and nextval included): RLS on
-- without any policy (the API roles see no row; the pipeline reads as the owner, which RLS does
-- not restrict), every privilege of anon and authenticated revoked, the identity sequence too,
-- and a comment that marks the table as created by this migration (migration 0007 and the tests
-- recognise the project's own tables by it). When F-69 takes a table over, its own grants and
-- policies take over.

DO $$
DECLARE
  marker CONSTANT text := 'irt-pipeline: created by migration 0002 (development stand-in for the '
    'exam-import story''s table: RLS on, no API-role access)';
BEGIN
  IF to_regclass(format('%I.items', current_schema())) IS NULL THEN
    CREATE TABLE items (
      id UUID PRIMARY KEY,
      item_bank TEXT NOT NULL DEFAULT 'default',
      created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX idx_items_item_bank ON items(item_bank);
    EXECUTE format('COMMENT ON TABLE items IS %L', marker);
    ALTER TABLE items ENABLE ROW LEVEL SECURITY;
    REVOKE ALL ON items FROM anon, authenticated;
  END IF;

  IF to_regclass(format('%I.student_attempts', current_schema())) IS NULL THEN
    CREATE TABLE student_attempts (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      student_id UUID NOT NULL,
      item_id UUID NOT NULL REFERENCES items(id),
      correct BOOLEAN NOT NULL,
      attempted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      exam_import_id UUID NULL
    );
    CREATE INDEX idx_student_attempts_item_id ON student_attempts(item_id);
    -- Serves the first-attempt rule: DISTINCT ON (student_id, item_id) ORDER BY attempted_at, id.
    CREATE INDEX idx_student_attempts_first ON student_attempts(student_id, item_id, attempted_at, id);
    EXECUTE format('COMMENT ON TABLE student_attempts IS %L', marker);
    ALTER TABLE student_attempts ENABLE ROW LEVEL SECURITY;
    REVOKE ALL ON student_attempts FROM anon, authenticated;
    EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM anon, authenticated',
                   pg_get_serial_sequence('student_attempts', 'id'));
  END IF;
END
$$;

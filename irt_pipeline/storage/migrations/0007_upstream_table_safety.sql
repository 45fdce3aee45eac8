-- Migration: upstream tables created safe (issue 12, section 1)
--
-- Until this release migration 0002 created `items` and `student_attempts`, when missing, with
-- no RLS and no revokes: on a Supabase project (whose default privileges grant every new table
-- and sequence in public to anon and authenticated) the API roles could read, delete, truncate
-- and advance the id sequence. 0002 now creates them safe; this migration repairs databases
-- where the old 0002 created them, and only those.
--
-- Which tables did this project create?
-- * 0002 now marks its tables with a comment ('irt-pipeline: created by migration 0002 ...').
-- * A database migrated by the old 0002 has no marker. There, a table is this project's when its
--   row type (pg_type, written by CREATE TABLE and touched afterwards only by RENAME, SET SCHEMA
--   and OWNER TO) was written by the very transaction that recorded 0002 in
--   irt_schema_migrations (every pending migration runs in one transaction, migrate.py): the
--   old 0002 created the table, or it was already there and 0002 only added indexes. A dump and
--   restore or a pg_upgrade rewrites the catalogs, so an unmarked table there is not recognised
--   and is left as it is (a NOTICE says so when it is open to anon or authenticated): see the
--   README's data contract for the two statements that harden it by hand.
-- A table with RLS policies of its own is the exam-import story's (its policies take over) and a
-- table the migrating role does not own cannot be this project's: both are left alone.
--
-- Hardening = the marker, RLS on (no policy: the API roles see no row; the owner, which the
-- pipeline connects as, is not restricted), and every privilege of anon and authenticated revoked
-- from the table and its sequences.

DO $$
DECLARE
  marker_prefix CONSTANT text := 'irt-pipeline: created by migration 0002';
  marker CONSTANT text := 'irt-pipeline: created by migration 0002 (development stand-in for the '
    'exam-import story''s table: RLS on, no API-role access)';
  recorded xid;
  table_name text;
  rel regclass;
  ours boolean;
  seq record;
BEGIN
  SELECT m.xmin INTO recorded FROM irt_schema_migrations m WHERE m.name = '0002_upstream_tables.sql';

  FOREACH table_name IN ARRAY ARRAY['items', 'student_attempts'] LOOP
    rel := to_regclass(format('%I.%I', current_schema(), table_name));
    CONTINUE WHEN rel IS NULL;

    ours := coalesce(obj_description(rel, 'pg_class') LIKE marker_prefix || '%', false)
      OR EXISTS (SELECT FROM pg_type t WHERE t.typrelid = rel AND t.xmin = recorded);
    IF ours AND EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = rel) THEN
      RAISE NOTICE 'irt-pipeline 0007: % has RLS policies of its own: left to them', rel;
      ours := false;
    END IF;
    IF ours AND NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = rel), 'USAGE') THEN
      RAISE NOTICE 'irt-pipeline 0007: % belongs to another role: left alone', rel;
      ours := false;
    END IF;

    IF NOT ours THEN
      IF has_table_privilege('anon', rel, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')
         OR has_table_privilege('authenticated', rel, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE') THEN
        RAISE NOTICE 'irt-pipeline 0007: % is not recognisably this project''s and grants privileges to '
                     'anon/authenticated: left as it is (the exam-import story owns it)', rel;
      END IF;
      CONTINUE;
    END IF;

    EXECUTE format('COMMENT ON TABLE %s IS %L', rel, marker);
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', rel);
    EXECUTE format('REVOKE ALL ON TABLE %s FROM anon, authenticated', rel);
    -- Sequences of the table: identity ('i') and serial ('a') columns.
    FOR seq IN
      SELECT d.objid::regclass AS seq_rel FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
        AND d.refobjid = rel AND d.deptype IN ('a', 'i') AND s.relkind = 'S'
    LOOP
      EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM anon, authenticated', seq.seq_rel);
    END LOOP;
  END LOOP;

  -- The demo's truth table (storage/demo.py, created by seed_demo) is always this project's.
  IF to_regclass(format('%I.demo_item_truth', current_schema())) IS NOT NULL THEN
    ALTER TABLE demo_item_truth ENABLE ROW LEVEL SECURITY;
    REVOKE ALL ON demo_item_truth FROM anon, authenticated;
  END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- irt_item_parameters.item_id: ON DELETE RESTRICT instead of the brief's CASCADE
-- ---------------------------------------------------------------------------------------------
-- CASCADE let whoever may delete an item (the exam-import story, or before this release anon
-- through the open table) erase that item's calibration history, around the service-role-only
-- policies. With RESTRICT an item that has parameter rows cannot be deleted (23503,
-- foreign_key_violation) until its history is deleted on purpose, by a role that may; retire
-- items instead of deleting them. The constraint keeps its name.
DO $$
DECLARE
  fk record;
BEGIN
  FOR fk IN
    SELECT c.conname FROM pg_constraint c
    WHERE c.conrelid = 'irt_item_parameters'::regclass AND c.contype = 'f'
      AND c.confrelid = to_regclass(format('%I.items', current_schema())) AND c.confdeltype <> 'r'
  LOOP
    EXECUTE format(
      'ALTER TABLE irt_item_parameters DROP CONSTRAINT %1$I, '
      'ADD CONSTRAINT %1$I FOREIGN KEY (item_id) REFERENCES items(id) ON DELETE RESTRICT',
      fk.conname);
  END LOOP;
END
$$;

-- Supabase compatibility: what every Supabase project already has, created here only when it is
-- missing, so that the same migrations apply unchanged to Supabase and to plain PostgreSQL
-- (the embedded development server, CI). Nothing that exists is altered or replaced.

-- The API roles of Supabase, NOLOGIN NOINHERIT as its init scripts create them. (There,
-- service_role also has BYPASSRLS; granting that needs a superuser, and this project reaches the
-- data as the tables' owner, so here service_role gets in through the RLS policies' JWT check.)
-- Roles are global to the server: two databases of one server may migrate at the same moment
-- (parallel tests); the loser of that race gets unique_violation on pg_authid (duplicate_object
-- when the role was already committed), and either means the role exists: carry on.
DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', role_name);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
      END;
    END IF;
  END LOOP;
END
$$;

-- Supabase lets the API roles use the public schema; granting again is harmless there.
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;

-- Schema auth and auth.role(), which the RLS policies call. On Supabase both belong to the auth
-- service: never replace them. The body is Supabase's own: the role claim of the request's JWT
-- (PostgREST sets request.jwt.claim.role in old versions, request.jwt.claims in current ones).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'auth') THEN
    CREATE SCHEMA auth;
    GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
  END IF;
  IF to_regprocedure('auth.role()') IS NULL THEN
    CREATE FUNCTION auth.role() RETURNS text
      LANGUAGE sql STABLE
      AS $fn$
        SELECT coalesce(
          nullif(current_setting('request.jwt.claim.role', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
        )::text
      $fn$;
  END IF;
END
$$;

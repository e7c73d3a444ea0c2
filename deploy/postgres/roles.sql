-- One PostgreSQL role per service, each owning only its own schema.
--
-- Run once per deployment as a superuser, connected to the platform's database:
--   psql -v ON_ERROR_STOP=1 -d ics -f deploy/postgres/roles.sql
-- It is idempotent. Passwords are set apart, from the deployment's secrets
-- (ALTER ROLE ics_trusts PASSWORD '...'), so that none is written here.
--
-- What each role may do:
-- - ics_<service> logs in, owns the schema <service> (its event log, checkpoints and views)
--   and can create nothing outside it: no schemas, no databases, nothing in `public`;
-- - the services that check their views against another service's log (`icsctl admin verify`,
--   rebuild's completeness check) read that log through ics_log_readers, which each service
--   grants SELECT on its `events` table and on nothing else, at every start.
-- The test tests/tests/database_roles.rs runs this file and tries each refusal.

DO $$
DECLARE
    service text;
    owned text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ics_log_readers') THEN
        CREATE ROLE ics_log_readers NOLOGIN;
    END IF;
    FOREACH service IN ARRAY ARRAY['trusts', 'workshops', 'metrics', 'reporting'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ics_' || service) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', 'ics_' || service);
        END IF;
        EXECUTE format('ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS',
                       'ics_' || service);
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', service, 'ics_' || service);
        EXECUTE format('ALTER SCHEMA %I OWNER TO %I', service, 'ics_' || service);
        -- A schema that an earlier deployment filled as another role: its tables (and the
        -- sequences they own) become the service's too.
        FOR owned IN
            SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
            WHERE schemaname = service AND tableowner <> 'ics_' || service
        LOOP
            EXECUTE format('ALTER TABLE %s OWNER TO %I', owned, 'ics_' || service);
        END LOOP;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), 'ics_' || service);
    END LOOP;
    -- Only the roles above connect, and nobody creates schemas or temporary tables.
    EXECUTE format('REVOKE CONNECT, CREATE, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;

REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT ics_log_readers TO ics_workshops, ics_metrics, ics_reporting;

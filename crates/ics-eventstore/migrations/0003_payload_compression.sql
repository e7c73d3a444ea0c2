-- Event payloads past PostgreSQL's TOAST threshold (about 2 kB: an ingest event carries up to a
-- thousand observations) are compressed as they are written. pglz, the default, spent more
-- of the database's time on bulk ingest than anything else; lz4 compresses several times
-- faster at a slightly lower ratio. Rows already stored keep their compression. A server built
-- without lz4 keeps pglz: nothing depends on the method.
DO $$
BEGIN
    ALTER TABLE events ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: event payloads stay compressed with pglz';
END
$$;

-- A series' record holds every point it has (ten years of daily figures is tens of kB) and is
-- rewritten whenever an observation of it arrives: compressed with lz4 rather than pglz, which
-- cost bulk ingest more of the database's time than the writes themselves. A server built
-- without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE measure_series ALTER COLUMN record SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: series records stay compressed with pglz';
END
$$;

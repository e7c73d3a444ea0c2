-- Which PostgreSQL cluster and database this schema lives in. A backup restored into another
-- cluster or database no longer matches: the rows restored from it carry another cluster's
-- transaction ids, and the relay's checkpoint describes a stream that may not be this one's.
CREATE TABLE IF NOT EXISTS log_identity (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    system_identifier bigint NOT NULL,
    database_oid bigint NOT NULL,
    -- Set when a restore is detected: events below this global position came from the backup and
    -- wait for the relay to reconcile them with its stream; NULL once it has.
    restored_below bigint,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Relay checkpoints are kept per JetStream stream (the row's `relay` names the stream), so a
-- new subject prefix starts from what its own stream holds. The single checkpoint of earlier
-- versions is dropped: the relay resumes from where its stream ends.
DELETE FROM relay_checkpoints WHERE relay = 'jetstream';

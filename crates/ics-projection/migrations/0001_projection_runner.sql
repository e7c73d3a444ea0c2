-- Per projection and source stream: the last event version applied. Redeliveries at or below it
-- are skipped; an event further ahead is parked until the gap before it is filled.
CREATE TABLE IF NOT EXISTS projection_stream_versions (
    projection text NOT NULL,
    source_service text NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (projection, source_service, stream_id)
);

CREATE TABLE IF NOT EXISTS projection_parked (
    projection text NOT NULL,
    source_service text NOT NULL,
    stream_id text NOT NULL,
    stream_version bigint NOT NULL,
    envelope bytea NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, source_service, stream_id, stream_version)
);

-- How far each projection has read each JetStream stream, and how much it applied.
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection text NOT NULL,
    source_stream text NOT NULL,
    stream_sequence bigint NOT NULL,
    events_applied bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, source_stream)
);

-- Messages a projection gave up on after max_deliver attempts, for operators to inspect.
CREATE TABLE IF NOT EXISTS dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection text NOT NULL,
    subject text NOT NULL,
    stream_sequence bigint NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    deliveries bigint NOT NULL,
    error text NOT NULL,
    payload bytea NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

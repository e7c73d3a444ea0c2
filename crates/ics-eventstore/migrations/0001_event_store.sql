-- The event log of one service. It is also the outbox: the relay publishes from it.
CREATE TABLE IF NOT EXISTS events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Positions become visible in commit order, not allocation order; the relay orders and
    -- checkpoints by (transaction_id, global_position) and reads only below the snapshot xmin.
    transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream_id text NOT NULL,
    stream_version bigint NOT NULL CHECK (stream_version > 0),
    event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL,
    schema_version integer NOT NULL,
    organisation text NOT NULL,
    payload bytea NOT NULL,
    request_id text NOT NULL,
    correlation_id text NOT NULL,
    causation_id text NOT NULL,
    traceparent text NOT NULL,
    tracestate text NOT NULL,
    principal text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX IF NOT EXISTS events_commit_order ON events (transaction_id, global_position);

-- First results of idempotent commands, keyed by who asked and their request id.
CREATE TABLE IF NOT EXISTS command_requests (
    principal text NOT NULL,
    request_id text NOT NULL,
    command_type text NOT NULL,
    fingerprint bytea NOT NULL,
    result bytea NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, request_id)
);

-- How far the relay has published, in commit order.
CREATE TABLE IF NOT EXISTS relay_checkpoints (
    relay text PRIMARY KEY,
    transaction_id xid8 NOT NULL,
    global_position bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The measures projection: measure definitions, one row per series with its SPC state, and
-- peer groups. Built only from the metrics service's events.
CREATE TABLE IF NOT EXISTS measure_definitions (
    code text PRIMARY KEY,
    definition bytea NOT NULL,
    revision integer NOT NULL
);

CREATE TABLE IF NOT EXISTS measure_series (
    measure_code text NOT NULL,
    ods_code text NOT NULL,
    value_stream_id text NOT NULL,
    -- The series folded from its events (ics.events.v1.SeriesRecord), to recompute its SPC.
    record bytea NOT NULL,
    points integer NOT NULL,
    latest_start date,
    latest_end date,
    latest_value double precision,
    variation integer NOT NULL,
    assurance integer NOT NULL,
    target double precision,
    rule_set text NOT NULL,
    rule_set_version text NOT NULL,
    -- The latest points with a numerator and denominator (oldest first), for peer bands.
    recent_starts date[] NOT NULL,
    recent_numerators double precision[] NOT NULL,
    recent_denominators double precision[] NOT NULL,
    PRIMARY KEY (measure_code, ods_code, value_stream_id)
);
CREATE INDEX IF NOT EXISTS measure_series_by_organisation ON measure_series (ods_code);
-- Records are rewritten whole on every batch; compressing them costs more than it saves.
ALTER TABLE measure_series ALTER COLUMN record SET STORAGE EXTERNAL;

CREATE TABLE IF NOT EXISTS peer_groups (
    peer_group_id text PRIMARY KEY,
    definition bytea NOT NULL,
    version integer NOT NULL
);

-- The outcomes projection: workshops and their target sheets, as programme outcomes read them.
-- Built only from the workshops service's events; trust and value-stream names and membership
-- come from the overview projection's tables beside these.
CREATE TABLE IF NOT EXISTS workshops (
    workshop_id text PRIMARY KEY,
    ods_code text NOT NULL,
    value_stream_id text NOT NULL,
    kind integer NOT NULL,
    title text NOT NULL,
    -- ics.workshops.v1.WorkshopStatus
    status integer NOT NULL,
    preparation_starts_on date,
    scheduled_from date,
    scheduled_to date,
    held_from date,
    held_to date,
    reported_out_on date,
    cancelled_on date,
    closed_on date
);
CREATE INDEX IF NOT EXISTS workshops_by_trust ON workshops (ods_code);

CREATE TABLE IF NOT EXISTS workshop_metrics (
    workshop_id text NOT NULL,
    metric_id text NOT NULL,
    -- Place on the target sheet, so metrics read back in the order they were chartered.
    position integer NOT NULL,
    name text NOT NULL,
    -- ics.events.v1.MetricKind and MetricUnit
    kind integer NOT NULL,
    unit integer NOT NULL,
    baseline double precision NOT NULL,
    target double precision NOT NULL,
    -- The report-out value; null until the report-out.
    after_value double precision,
    PRIMARY KEY (workshop_id, metric_id)
);

-- One row per workshop and checkpoint that was either recorded or missed.
CREATE TABLE IF NOT EXISTS workshop_follow_ups (
    workshop_id text NOT NULL,
    -- ics.events.v1.FollowUpCheckpoint
    checkpoint integer NOT NULL,
    -- ics.workshops.v1.FollowUpState: recorded or missed
    state integer NOT NULL,
    measured_on date,
    due_on date,
    PRIMARY KEY (workshop_id, checkpoint)
);

CREATE TABLE IF NOT EXISTS workshop_follow_up_values (
    workshop_id text NOT NULL,
    checkpoint integer NOT NULL,
    metric_id text NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY (workshop_id, checkpoint, metric_id)
);

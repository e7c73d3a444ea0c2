-- The overview projection: what ICS and programme boards read. Built only from events.
CREATE TABLE IF NOT EXISTS organisations (
    ods_code text PRIMARY KEY,
    name text NOT NULL,
    kind integer NOT NULL
);

CREATE TABLE IF NOT EXISTS organisation_links (
    ods_code text NOT NULL,
    parent_ods_code text NOT NULL,
    valid_from date NOT NULL,
    valid_to date,
    PRIMARY KEY (ods_code, parent_ods_code, valid_from)
);
CREATE INDEX IF NOT EXISTS organisation_links_by_parent ON organisation_links (parent_ods_code);

CREATE TABLE IF NOT EXISTS cqc_ratings (
    ods_code text NOT NULL,
    published_on date NOT NULL,
    overall integer NOT NULL,
    safe integer NOT NULL,
    effective integer NOT NULL,
    caring integer NOT NULL,
    responsive integer NOT NULL,
    well_led integer NOT NULL,
    PRIMARY KEY (ods_code, published_on)
);

CREATE TABLE IF NOT EXISTS executive_departures (
    appointment_id text PRIMARY KEY,
    ods_code text NOT NULL,
    role integer NOT NULL,
    left_on date NOT NULL
);

CREATE TABLE IF NOT EXISTS value_streams (
    value_stream_id text PRIMARY KEY,
    ods_code text NOT NULL,
    name text NOT NULL,
    status integer NOT NULL
);

CREATE TABLE IF NOT EXISTS training_participation (
    cohort_id text NOT NULL,
    ods_code text NOT NULL,
    participants integer NOT NULL,
    completed integer NOT NULL,
    survey_respondents integer NOT NULL,
    valued integer NOT NULL,
    PRIMARY KEY (cohort_id, ods_code)
);

CREATE TABLE IF NOT EXISTS programmes (
    programme_id text PRIMARY KEY,
    name text NOT NULL,
    starts_on date,
    ends_on date
);

CREATE TABLE IF NOT EXISTS programme_trusts (
    programme_id text NOT NULL,
    ods_code text NOT NULL,
    joined_on date NOT NULL,
    PRIMARY KEY (programme_id, ods_code)
);

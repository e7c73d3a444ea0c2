-- What the workshops service knows of the trusts service's organisations and value streams,
-- built from its events, so that a workshop's references are checked without calling it.
CREATE TABLE IF NOT EXISTS reference_organisations (
    ods_code text PRIMARY KEY,
    kind integer NOT NULL
);

CREATE TABLE IF NOT EXISTS reference_value_streams (
    value_stream_id text PRIMARY KEY,
    ods_code text NOT NULL,
    status integer NOT NULL
);

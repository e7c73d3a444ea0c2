-- When each workshop's follow-ups fall due, built from the service's own events; the scheduler
-- reads it to record FollowUpMissed for measurements that never came.
CREATE TABLE IF NOT EXISTS follow_up_workshops (
    workshop_id text PRIMARY KEY,
    ods_code text NOT NULL,
    held_to date
);

CREATE TABLE IF NOT EXISTS follow_up_schedule (
    workshop_id text NOT NULL,
    checkpoint integer NOT NULL,
    due_on date NOT NULL,
    -- When the report-out was recorded: a back-loaded workshop's follow-ups are not missed
    -- before its measurements had a chance to arrive.
    reported_at timestamptz NOT NULL,
    -- pending until recorded or missed.
    state text NOT NULL DEFAULT 'pending',
    PRIMARY KEY (workshop_id, checkpoint)
);
CREATE INDEX IF NOT EXISTS follow_up_schedule_due ON follow_up_schedule (due_on) WHERE state = 'pending';

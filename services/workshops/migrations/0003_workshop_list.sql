-- ListWorkshops' read model, kept by the workshop_list projection of the service's own events:
-- each workshop as GetWorkshop shows it (ics.workshops.v1.Workshop, encoded), listed by trust
-- in workshop id order. Ids sort bytewise ("C"), the order the list has always had.
CREATE TABLE IF NOT EXISTS workshop_list (
    workshop_id text COLLATE "C" PRIMARY KEY,
    ods_code text NOT NULL,
    workshop bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS workshop_list_by_trust ON workshop_list (ods_code, workshop_id);

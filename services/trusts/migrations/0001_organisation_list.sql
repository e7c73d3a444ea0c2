-- ListOrganisations' read model, kept by the organisation_list projection of the service's own
-- events. Each organisation as the API shows it (ics.trusts.v1.Organisation, encoded: the
-- aggregate's whole state), beside what the callers' scopes filter on. Codes sort bytewise
-- ("C"), the order the list has always had.
CREATE TABLE IF NOT EXISTS organisation_list (
    ods_code text COLLATE "C" PRIMARY KEY,
    kind integer NOT NULL,
    organisation bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS organisation_list_by_kind ON organisation_list (kind, ods_code);

-- Its dated parent links, in the order they were made: a board sees the organisations whose
-- parent on the day asked is its ICB.
CREATE TABLE IF NOT EXISTS organisation_list_parents (
    ods_code text COLLATE "C" NOT NULL,
    position integer NOT NULL,
    parent_ods_code text NOT NULL,
    valid_from date NOT NULL,
    valid_to date,
    PRIMARY KEY (ods_code, position)
);
CREATE INDEX IF NOT EXISTS organisation_list_parents_by_parent
    ON organisation_list_parents (parent_ods_code);

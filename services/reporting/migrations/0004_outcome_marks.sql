-- Marks that let each reporting process keep the counted workshops in memory and read again
-- only those that changed (services/reporting/src/outcome_records.rs):
-- - `workshops.changed_by`: the transaction that last wrote the workshop or a row of its
--   target sheet, report-out or follow-ups;
-- - `outcomes_resets`: how many times the projection's rows were deleted (a rebuild), which
--   leaves no row behind to carry a mark.
-- Triggers keep both, not the projection's code, so that no writer can change a workshop
-- without marking it: not a future event's handler, not a replica of the previous version
-- still applying events during a rolling upgrade.
ALTER TABLE workshops
    ADD COLUMN IF NOT EXISTS changed_by xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS workshops_by_change ON workshops (changed_by);

CREATE TABLE IF NOT EXISTS outcomes_resets (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    resets bigint NOT NULL
);
INSERT INTO outcomes_resets (resets) VALUES (0) ON CONFLICT DO NOTHING;

-- Whatever a statement writes into a workshop's row, the row names the writing transaction.
CREATE OR REPLACE FUNCTION outcomes_mark_workshop() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_by := pg_current_xact_id();
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER workshops_mark BEFORE INSERT OR UPDATE ON workshops
    FOR EACH ROW EXECUTE FUNCTION outcomes_mark_workshop();

-- A write to a metric or follow-up marks its workshop, once per statement (a rebuild deletes
-- every row at once) and not again within the transaction that already marked it.
CREATE OR REPLACE FUNCTION outcomes_mark_workshops_of_rows() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE workshops w SET changed_by = pg_current_xact_id()
    FROM (SELECT DISTINCT workshop_id FROM written) r
    WHERE w.workshop_id = r.workshop_id AND w.changed_by <> pg_current_xact_id();
    RETURN NULL;
END
$$;
-- A trigger with a transition table fires on one kind of statement only, hence three per
-- table. Rows never move between workshops (`workshop_id` is part of every key), so an
-- update's new rows name the workshop.
CREATE OR REPLACE TRIGGER workshop_metrics_mark_insert AFTER INSERT ON workshop_metrics
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION outcomes_mark_workshops_of_rows();
CREATE OR REPLACE TRIGGER workshop_metrics_mark_update AFTER UPDATE ON workshop_metrics
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION outcomes_mark_workshops_of_rows();
CREATE OR REPLACE TRIGGER workshop_metrics_mark_delete AFTER DELETE ON workshop_metrics
    REFERENCING OLD TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION outcomes_mark_workshops_of_rows();
CREATE OR REPLACE TRIGGER workshop_follow_ups_mark_insert AFTER INSERT ON workshop_follow_ups
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION outcomes_mark_workshops_of_rows();
CREATE OR REPLACE TRIGGER workshop_follow_ups_mark_update AFTER UPDATE ON workshop_follow_ups
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION outcomes_mark_workshops_of_rows();
CREATE OR REPLACE TRIGGER workshop_follow_ups_mark_delete AFTER DELETE ON workshop_follow_ups
    REFERENCING OLD TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION outcomes_mark_workshops_of_rows();
CREATE OR REPLACE TRIGGER workshop_follow_up_values_mark_insert
    AFTER INSERT ON workshop_follow_up_values
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION outcomes_mark_workshops_of_rows();
CREATE OR REPLACE TRIGGER workshop_follow_up_values_mark_update
    AFTER UPDATE ON workshop_follow_up_values
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION outcomes_mark_workshops_of_rows();
CREATE OR REPLACE TRIGGER workshop_follow_up_values_mark_delete
    AFTER DELETE ON workshop_follow_up_values
    REFERENCING OLD TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION outcomes_mark_workshops_of_rows();

-- Deleted workshops leave nothing to mark: the count of resets says everything may have gone.
CREATE OR REPLACE FUNCTION outcomes_count_reset() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE outcomes_resets SET resets = resets + 1;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER workshops_count_reset AFTER DELETE OR TRUNCATE ON workshops
    FOR EACH STATEMENT EXECUTE FUNCTION outcomes_count_reset();

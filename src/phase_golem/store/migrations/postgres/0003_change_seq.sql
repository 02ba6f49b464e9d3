-- The PostgreSQL twin of sqlite/0003_change_seq.sql: the store-wide change sequence
-- (DESIGN §3 "Snapshots"), stamped on every item and run row a transaction writes.
ALTER TABLE items ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX items_change_seq ON items (change_seq);
CREATE INDEX runs_change_seq ON runs (change_seq);
INSERT INTO id_counters (name, high_water) VALUES ('__change__', 0)
    ON CONFLICT (name) DO NOTHING;

-- A row written by anything but our store (psql, a script, a test playing a worker that
-- died) does not stamp itself: this trigger does, so no change is invisible to a snapshot.
-- Our own writes carry a new stamp and pass through untouched.
CREATE FUNCTION phase_golem_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'INSERT' AND NEW.change_seq = 0)
       OR (TG_OP = 'UPDATE' AND NEW.change_seq = OLD.change_seq) THEN
        UPDATE id_counters SET high_water = high_water + 1 WHERE name = '__change__'
            RETURNING high_water INTO NEW.change_seq;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER items_stamp BEFORE INSERT OR UPDATE ON items
    FOR EACH ROW EXECUTE FUNCTION phase_golem_stamp();
CREATE TRIGGER runs_stamp BEFORE INSERT OR UPDATE ON runs
    FOR EACH ROW EXECUTE FUNCTION phase_golem_stamp();

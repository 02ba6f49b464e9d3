-- The store-wide change sequence (DESIGN §3 "Snapshots"). Every transaction that inserts or
-- updates an item or a run takes the next value of the `__change__` counter at its first
-- such write and stamps it on every item and run row it writes, so a snapshot that has
-- applied everything up to N refreshes by reading only the rows above N (archived items
-- included, so it can drop them). Rows written before this migration carry 0: the first
-- snapshot is a full load anyway.
ALTER TABLE items ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX items_change_seq ON items (change_seq);
CREATE INDEX runs_change_seq ON runs (change_seq);
INSERT INTO id_counters (name, high_water) VALUES ('__change__', 0)
    ON CONFLICT (name) DO NOTHING;

-- A row written by anything but our store (the sqlite3 shell, a script, a test playing a
-- worker that died) does not stamp itself: these triggers do it, so no change is ever
-- invisible to a snapshot. Our own inserts carry their stamp (> 0) and our updates change
-- it, so they do not fire, except when one transaction writes the same row twice: then the
-- row simply gets a later sequence, which costs a refresh a few rows, never a change.
CREATE TRIGGER items_stamp_insert AFTER INSERT ON items WHEN NEW.change_seq = 0
BEGIN
    UPDATE id_counters SET high_water = high_water + 1 WHERE name = '__change__';
    UPDATE items SET change_seq = (SELECT high_water FROM id_counters WHERE name = '__change__')
        WHERE id = NEW.id;
END;
CREATE TRIGGER items_stamp_update AFTER UPDATE ON items WHEN NEW.change_seq = OLD.change_seq
BEGIN
    UPDATE id_counters SET high_water = high_water + 1 WHERE name = '__change__';
    UPDATE items SET change_seq = (SELECT high_water FROM id_counters WHERE name = '__change__')
        WHERE id = NEW.id;
END;
CREATE TRIGGER runs_stamp_insert AFTER INSERT ON runs WHEN NEW.change_seq = 0
BEGIN
    UPDATE id_counters SET high_water = high_water + 1 WHERE name = '__change__';
    UPDATE runs SET change_seq = (SELECT high_water FROM id_counters WHERE name = '__change__')
        WHERE id = NEW.id;
END;
CREATE TRIGGER runs_stamp_update AFTER UPDATE ON runs WHEN NEW.change_seq = OLD.change_seq
BEGIN
    UPDATE id_counters SET high_water = high_water + 1 WHERE name = '__change__';
    UPDATE runs SET change_seq = (SELECT high_water FROM id_counters WHERE name = '__change__')
        WHERE id = NEW.id;
END;

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

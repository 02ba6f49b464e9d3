-- Intake sources (DESIGN §11), the PostgreSQL twin of sqlite 0006. The `schedules` table of 0001 is the one row per source
-- (§4); it gains the source's record: the last error and the failures in a row (durable
-- backoff, `source.failing` after three), the claim of a run in progress (a worker and a
-- lease, so one tick never runs twice and `sources run` is refused while one runs), and
-- totals of what its runs did. `(kind, value)` is the schedule's fingerprint: a changed
-- one is due at once, an unchanged one keeps `next_run_at`.
ALTER TABLE schedules ADD COLUMN last_error TEXT;
ALTER TABLE schedules ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN claimed_by TEXT;
ALTER TABLE schedules ADD COLUMN claimed_until TEXT;
ALTER TABLE schedules ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN items_created INTEGER NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN items_updated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN items_closed INTEGER NOT NULL DEFAULT 0;
-- `(source, external_id)` stays unique over active and archived items: both live in
-- `items` (archived = 1), under the unique index `items_source_external` of 0001.

-- Destructive exclusivity across workers (DESIGN §7, §14). A run claimed to run alone (a
-- destructive phase in shared isolation) is marked `exclusive = 1` by the claim itself,
-- which takes it only when no run is live anywhere; every other claim takes nothing while
-- an exclusive run is live. Both checks are in the claim's one transaction, under the
-- store's write lock, so two workers can never both pass them.
ALTER TABLE runs ADD COLUMN exclusive INTEGER NOT NULL DEFAULT 0;
-- What every claim asks (is an exclusive run live?) costs one look at a tiny index.
CREATE INDEX runs_live_exclusive ON runs (id) WHERE status = 'active' AND exclusive = 1;

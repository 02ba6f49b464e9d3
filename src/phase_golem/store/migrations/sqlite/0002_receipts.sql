-- Receipts (DESIGN §6): one per committed run. `seq` keeps the order they were recorded
-- in, so the latest receipt of a path wins in `verify`. `artifacts` holds JSON text:
-- [{path, state, sha256, size, reason, reported, touched}]. Only `git_commit` changes later.
CREATE TABLE receipts (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          TEXT NOT NULL UNIQUE REFERENCES runs (id),
    item_id         TEXT NOT NULL REFERENCES items (id),
    phase           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    idempotency_key TEXT,
    snapshot_before TEXT,
    snapshot_after  TEXT,
    git_commit      TEXT,
    workdir         TEXT NOT NULL DEFAULT '.',
    artifacts       TEXT NOT NULL DEFAULT '[]'
) STRICT;

CREATE INDEX receipts_item ON receipts (item_id, seq);

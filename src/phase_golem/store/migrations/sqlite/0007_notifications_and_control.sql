-- The notifications outbox (DESIGN §12): one row written in the same transaction as the
-- ledger event that causes it (sink '*', fanned out to the configured sinks by delivery),
-- so none is lost and none is invented. `payload` is redacted JSON text. The scheduler's
-- pause flag lives in `meta` (key 'scheduler.paused') and needs no table.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    sink            TEXT NOT NULL,
    item_id         TEXT,
    run_id          TEXT,
    event_seq       INTEGER,
    payload         TEXT NOT NULL DEFAULT '{}',
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed', 'routed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
) STRICT;

-- What delivery reads: the pending rows, due first.
CREATE INDEX notifications_pending ON notifications (status, next_attempt_at, id);

-- Items: Phase Golem's 22 BacklogItem fields, then ours (DESIGN §4).
-- tags, dependencies and description hold JSON text.
CREATE TABLE items (
    id                    TEXT PRIMARY KEY,
    title                 TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('new','scoping','ready','in_progress','done','blocked')),
    phase                 TEXT,
    size                  TEXT CHECK (size IN ('small','medium','large')),
    complexity            TEXT CHECK (complexity IN ('low','medium','high')),
    risk                  TEXT CHECK (risk IN ('low','medium','high')),
    impact                TEXT CHECK (impact IN ('low','medium','high')),
    requires_human_review INTEGER NOT NULL DEFAULT 0,
    origin                TEXT,
    blocked_from_status   TEXT,
    blocked_reason        TEXT,
    blocked_type          TEXT CHECK (blocked_type IN ('clarification','decision')),
    unblock_context       TEXT,
    tags                  TEXT NOT NULL DEFAULT '[]',
    dependencies          TEXT NOT NULL DEFAULT '[]',
    created               TEXT NOT NULL,
    updated               TEXT NOT NULL,
    pipeline_type         TEXT,
    description           TEXT,
    phase_pool            TEXT CHECK (phase_pool IN ('pre','main')),
    last_phase_commit     TEXT,
    previous_summary      TEXT,
    phase_entered_at      TEXT,
    wake_at               TEXT,
    triage_attempts       INTEGER NOT NULL DEFAULT 0,
    source                TEXT,
    external_id           TEXT,
    branch                TEXT,
    cost_usd              REAL NOT NULL DEFAULT 0,
    tokens_in             INTEGER NOT NULL DEFAULT 0,
    tokens_out            INTEGER NOT NULL DEFAULT 0,
    archived              INTEGER NOT NULL DEFAULT 0,
    archived_at           TEXT,
    closed_reason         TEXT
) STRICT;

CREATE INDEX items_active ON items (archived, status);
CREATE UNIQUE INDEX items_source_external ON items (source, external_id)
    WHERE source IS NOT NULL AND external_id IS NOT NULL;

-- ID high-water marks per prefix (and the run counter): never lowered, so never reused.
CREATE TABLE id_counters (
    name       TEXT PRIMARY KEY,
    high_water INTEGER NOT NULL CHECK (high_water >= 0)
) STRICT;

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    item_id         TEXT NOT NULL REFERENCES items (id),
    phase           TEXT NOT NULL,
    pool            TEXT,
    kind            TEXT NOT NULL CHECK (kind IN ('triage','phase')),
    attempt         INTEGER NOT NULL,
    visit           INTEGER NOT NULL,
    retry_of        TEXT REFERENCES runs (id),
    step            TEXT NOT NULL,
    status          TEXT NOT NULL,
    error           TEXT,
    error_class     TEXT,
    idempotency_key TEXT,
    snapshot_before TEXT,
    snapshot_after  TEXT,
    agent           TEXT,
    model           TEXT,
    session_id      TEXT,
    worker_id       TEXT,
    lease_until     TEXT,
    not_before      TEXT,
    queued_at       TEXT NOT NULL,
    started_at      TEXT,
    ended_at        TEXT,
    exit_code       INTEGER,
    pid             INTEGER,
    cost_usd        REAL NOT NULL DEFAULT 0,
    tokens_in       INTEGER NOT NULL DEFAULT 0,
    tokens_out      INTEGER NOT NULL DEFAULT 0,
    result          TEXT,
    side_effect     INTEGER NOT NULL DEFAULT 0,
    mutation        TEXT NOT NULL DEFAULT 'none'
) STRICT;

CREATE INDEX runs_item ON runs (item_id, queued_at);
CREATE INDEX runs_status ON runs (status, step, not_before);
-- At most one live run per item (DESIGN §4), enforced by the database itself.
CREATE UNIQUE INDEX runs_one_active_per_item ON runs (item_id) WHERE status = 'active';

CREATE TABLE ledger (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    item_id TEXT,
    run_id  TEXT,
    data    TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX ledger_item ON ledger (item_id, seq);

CREATE TABLE schedules (
    source      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('every','cron')),
    value       TEXT NOT NULL,
    next_run_at TEXT,
    last_run_at TEXT
) STRICT;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

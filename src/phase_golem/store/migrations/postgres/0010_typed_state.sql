-- The PostgreSQL twin of sqlite/0010_typed_state.sql: the same tables, columns and moves.
-- The engine's own state in typed tables instead of JSON values in `meta` (issue 13):
-- commits owed to git ('git:pending'), leftovers of runs that did not succeed
-- ('git:leftovers') and agent pauses ('agent_pauses'). Existing values move into the
-- tables and their meta keys go; a value that is not valid JSON is dropped (it already
-- read as empty). Path lists stay JSON arrays, checked as such.
CREATE TABLE pending_commits (
    seq           BIGINT PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES runs (id),
    item_id       TEXT NOT NULL REFERENCES items (id),
    tree          TEXT NOT NULL CHECK (tree <> ''),
    phase         TEXT NOT NULL,
    touched       TEXT NOT NULL DEFAULT '[]' CHECK (json_typeof(touched::json) = 'array'),
    own           TEXT NOT NULL DEFAULT '[]' CHECK (json_typeof(own::json) = 'array'),
    succeeded     BIGINT NOT NULL CHECK (succeeded IN (0, 1)),
    immediate     BIGINT NOT NULL CHECK (immediate IN (0, 1)),
    summary       TEXT NOT NULL DEFAULT '',
    overlapped    BIGINT NOT NULL DEFAULT 0 CHECK (overlapped IN (0, 1)),
    own_committed BIGINT NOT NULL DEFAULT 0 CHECK (own_committed IN (0, 1)),
    intended      TEXT
);
CREATE INDEX pending_commits_run ON pending_commits (run_id);

CREATE TABLE leftovers (
    tree   TEXT NOT NULL CHECK (tree <> ''),
    path   TEXT NOT NULL CHECK (path <> ''),
    owners TEXT NOT NULL DEFAULT '[]' CHECK (json_typeof(owners::json) = 'array'),
    runs   TEXT NOT NULL DEFAULT '[]' CHECK (json_typeof(runs::json) = 'array'),
    blob   TEXT,
    PRIMARY KEY (tree, path)
);

CREATE TABLE agent_pauses (
    agent  TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    since  TEXT NOT NULL,
    run_id TEXT REFERENCES runs (id)
);

CREATE TABLE agent_resumes (
    agent      TEXT PRIMARY KEY,
    resumed_at TEXT NOT NULL
);

CREATE FUNCTION pg_typed_state_doc(meta_key TEXT) RETURNS jsonb LANGUAGE plpgsql AS $fn$
DECLARE
    doc jsonb;
BEGIN
    SELECT value::jsonb INTO doc FROM meta WHERE key = meta_key;
    RETURN doc;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$fn$;

INSERT INTO pending_commits (
    seq, run_id, item_id, tree, phase, touched, own, succeeded, immediate, summary,
    overlapped, own_committed, intended
)
SELECT
    e.n,
    e.v ->> 'run_id',
    e.v ->> 'item_id',
    e.v ->> 'tree',
    e.v ->> 'phase',
    COALESCE(e.v -> 'touched', '[]'::jsonb)::text,
    COALESCE(e.v -> 'own', '[]'::jsonb)::text,
    CASE WHEN COALESCE((e.v ->> 'succeeded')::boolean, false) THEN 1 ELSE 0 END,
    CASE WHEN COALESCE((e.v ->> 'immediate')::boolean, false) THEN 1 ELSE 0 END,
    COALESCE(e.v ->> 'summary', ''),
    CASE WHEN COALESCE(
        (e.v ->> 'overlapped')::boolean, (e.v -> 'own') IS DISTINCT FROM (e.v -> 'touched')
    ) THEN 1 ELSE 0 END,
    CASE WHEN COALESCE((e.v ->> 'own_committed')::boolean, false) THEN 1 ELSE 0 END,
    e.v ->> 'intended'
FROM jsonb_array_elements(
    CASE WHEN jsonb_typeof(pg_typed_state_doc('git:pending')) = 'array'
        THEN pg_typed_state_doc('git:pending') ELSE '[]'::jsonb END
) WITH ORDINALITY AS e (v, n)
WHERE jsonb_typeof(e.v) = 'object'
ORDER BY e.n;

INSERT INTO leftovers (tree, path, owners, runs, blob)
SELECT
    t.tree,
    p.path,
    COALESCE(p.o -> 'owners', '[]'::jsonb)::text,
    COALESCE(p.o -> 'runs', '[]'::jsonb)::text,
    p.o ->> 'blob'
FROM jsonb_each(
    CASE WHEN jsonb_typeof(pg_typed_state_doc('git:leftovers')) = 'object'
        THEN pg_typed_state_doc('git:leftovers') ELSE '{}'::jsonb END
) AS t (tree, paths),
    jsonb_each(CASE WHEN jsonb_typeof(t.paths) = 'object' THEN t.paths ELSE '{}'::jsonb END)
    AS p (path, o)
WHERE jsonb_typeof(p.o) = 'object';

INSERT INTO agent_pauses (agent, reason, since, run_id)
SELECT
    p.agent,
    COALESCE(p.o ->> 'reason', ''),
    COALESCE(p.o ->> 'since', ''),
    (SELECT r.id FROM runs AS r WHERE r.id = p.o ->> 'run_id')
FROM jsonb_each(
    CASE WHEN jsonb_typeof(pg_typed_state_doc('agent_pauses') -> 'paused') = 'object'
        THEN pg_typed_state_doc('agent_pauses') -> 'paused' ELSE '{}'::jsonb END
) AS p (agent, o)
WHERE jsonb_typeof(p.o) = 'object';

INSERT INTO agent_resumes (agent, resumed_at)
SELECT r.agent, r.o #>> '{}'
FROM jsonb_each(
    CASE WHEN jsonb_typeof(pg_typed_state_doc('agent_pauses') -> 'resumed') = 'object'
        THEN pg_typed_state_doc('agent_pauses') -> 'resumed' ELSE '{}'::jsonb END
) AS r (agent, o)
WHERE jsonb_typeof(r.o) = 'string' AND r.o #>> '{}' <> '';

DROP FUNCTION pg_typed_state_doc(TEXT);

DELETE FROM meta WHERE key IN ('git:pending', 'git:leftovers', 'agent_pauses');

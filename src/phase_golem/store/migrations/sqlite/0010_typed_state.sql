-- The engine's own state in typed tables instead of JSON values in `meta` (issue 13):
-- commits owed to git ('git:pending'), leftovers of runs that did not succeed
-- ('git:leftovers') and agent pauses ('agent_pauses'). Existing values move into the
-- tables and their meta keys go; a value that is not valid JSON is dropped (it already
-- read as empty). Path lists stay JSON arrays, checked as such.
CREATE TABLE pending_commits (
    seq           INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES runs (id),
    item_id       TEXT NOT NULL REFERENCES items (id),
    tree          TEXT NOT NULL CHECK (tree <> ''),
    phase         TEXT NOT NULL,
    touched       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(touched) AND json_type(touched) = 'array'),
    own           TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(own) AND json_type(own) = 'array'),
    succeeded     INTEGER NOT NULL CHECK (succeeded IN (0, 1)),
    immediate     INTEGER NOT NULL CHECK (immediate IN (0, 1)),
    summary       TEXT NOT NULL DEFAULT '',
    overlapped    INTEGER NOT NULL DEFAULT 0 CHECK (overlapped IN (0, 1)),
    own_committed INTEGER NOT NULL DEFAULT 0 CHECK (own_committed IN (0, 1)),
    intended      TEXT
) STRICT;
CREATE INDEX pending_commits_run ON pending_commits (run_id);

CREATE TABLE leftovers (
    tree   TEXT NOT NULL CHECK (tree <> ''),
    path   TEXT NOT NULL CHECK (path <> ''),
    owners TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(owners) AND json_type(owners) = 'array'),
    runs   TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(runs) AND json_type(runs) = 'array'),
    blob   TEXT,
    PRIMARY KEY (tree, path)
) STRICT;

CREATE TABLE agent_pauses (
    agent  TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    since  TEXT NOT NULL,
    run_id TEXT REFERENCES runs (id)
) STRICT;

CREATE TABLE agent_resumes (
    agent      TEXT PRIMARY KEY,
    resumed_at TEXT NOT NULL
) STRICT;

INSERT INTO pending_commits (
    seq, run_id, item_id, tree, phase, touched, own, succeeded, immediate, summary,
    overlapped, own_committed, intended
)
SELECT
    CAST(e.key AS INTEGER) + 1,
    json_extract(e.value, '$.run_id'),
    json_extract(e.value, '$.item_id'),
    json_extract(e.value, '$.tree'),
    json_extract(e.value, '$.phase'),
    COALESCE(json_extract(e.value, '$.touched'), '[]'),
    COALESCE(json_extract(e.value, '$.own'), '[]'),
    COALESCE(json_extract(e.value, '$.succeeded'), 0) <> 0,
    COALESCE(json_extract(e.value, '$.immediate'), 0) <> 0,
    COALESCE(json_extract(e.value, '$.summary'), ''),
    COALESCE(
        json_extract(e.value, '$.overlapped'),
        json_extract(e.value, '$.own') IS NOT json_extract(e.value, '$.touched')
    ) <> 0,
    COALESCE(json_extract(e.value, '$.own_committed'), 0) <> 0,
    json_extract(e.value, '$.intended')
FROM meta AS m, json_each(CASE WHEN json_valid(m.value) THEN m.value ELSE '[]' END) AS e
WHERE m.key = 'git:pending' AND json_valid(m.value) AND json_type(m.value) = 'array'
ORDER BY CAST(e.key AS INTEGER);

INSERT INTO leftovers (tree, path, owners, runs, blob)
SELECT
    t.key,
    p.key,
    COALESCE(json_extract(p.value, '$.owners'), '[]'),
    COALESCE(json_extract(p.value, '$.runs'), '[]'),
    json_extract(p.value, '$.blob')
FROM meta AS m,
    json_each(CASE WHEN json_valid(m.value) THEN m.value ELSE '{}' END) AS t,
    json_each(CASE WHEN t.type = 'object' THEN t.value ELSE '{}' END) AS p
WHERE m.key = 'git:leftovers' AND json_valid(m.value) AND json_type(m.value) = 'object'
    AND t.type = 'object' AND p.type = 'object';

INSERT INTO agent_pauses (agent, reason, since, run_id)
SELECT
    p.key,
    COALESCE(json_extract(p.value, '$.reason'), ''),
    COALESCE(json_extract(p.value, '$.since'), ''),
    (SELECT r.id FROM runs AS r WHERE r.id = json_extract(p.value, '$.run_id'))
FROM meta AS m, json_each(CASE WHEN json_valid(m.value) THEN m.value ELSE '{}' END, '$.paused') AS p
WHERE m.key = 'agent_pauses' AND json_valid(m.value) AND json_type(m.value) = 'object'
    AND json_type(m.value, '$.paused') = 'object' AND p.type = 'object';

INSERT INTO agent_resumes (agent, resumed_at)
SELECT r.key, r.value
FROM meta AS m, json_each(CASE WHEN json_valid(m.value) THEN m.value ELSE '{}' END, '$.resumed') AS r
WHERE m.key = 'agent_pauses' AND json_valid(m.value) AND json_type(m.value) = 'object'
    AND json_type(m.value, '$.resumed') = 'object' AND r.type = 'text' AND r.value <> '';

DELETE FROM meta WHERE key IN ('git:pending', 'git:leftovers', 'agent_pauses');

-- The PostgreSQL twin of sqlite/0005_read_pages.sql: the same tables, columns and indexes.
-- Pages of the read commands (store/sql_pages.py) read these indexes instead of sorting tables.
-- The runs listing, newest first: `runs --limit N [--before RUN | --after RUN]`.
CREATE INDEX runs_queued ON runs (queued_at, id);
-- One `status` section in its order (impact high first, then ID): the first N rows of a section
-- cost N, however many it holds. The expression is sql_pages.IMPACT_RANK, character for
-- character (SQLite uses an index on an expression only for the same expression).
CREATE INDEX items_section ON items (
    archived,
    status,
    (CASE impact WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 0 END) DESC,
    id
);

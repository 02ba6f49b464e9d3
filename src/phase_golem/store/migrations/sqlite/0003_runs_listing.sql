-- The runs listing (newest first) and its pages read this index instead of sorting the table.
CREATE INDEX runs_queued ON runs (queued_at, id);

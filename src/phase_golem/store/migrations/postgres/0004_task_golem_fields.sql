-- The PostgreSQL twin of sqlite/0004_task_golem_fields.sql: the same tables, columns and indexes.
-- What an item imported from a task-golem store keeps of task-golem's own fields (issue 11):
-- the ID it had before task-golem's YAML-to-JSONL migration (`x-legacy-id`), its updated
-- time then (`x-legacy-updated`), and its parent task (task-golem's `parent`).
ALTER TABLE items ADD COLUMN legacy_id TEXT;
ALTER TABLE items ADD COLUMN legacy_updated TEXT;
ALTER TABLE items ADD COLUMN parent TEXT;

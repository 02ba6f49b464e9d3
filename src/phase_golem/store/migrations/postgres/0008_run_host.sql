-- Where a run's agent runs (DESIGN §14), recorded with its pid: the host's id
-- (/etc/machine-id, else the host name) and the boot it started in
-- (/proc/sys/kernel/random/boot_id). Recovery adopts a live orphan only on its own host,
-- and knows a run of this host from an earlier boot is dead. Older runs carry NULL.
ALTER TABLE runs ADD COLUMN host_id TEXT;
ALTER TABLE runs ADD COLUMN boot_id TEXT;

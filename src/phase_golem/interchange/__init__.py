"""File formats we read and write: Phase Golem BACKLOG.yaml (v1 to v3) and inbox drop files."""

"""Adapters to the working tree: git, worktrees, workspace snapshots."""

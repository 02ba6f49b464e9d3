"""What a store raises that a caller can report (not a bug of ours)."""

from __future__ import annotations


class StoreError(Exception):
    """A persistence problem the caller can report (not a bug)."""


class NotFoundError(StoreError):
    pass


class ConflictError(StoreError):
    pass

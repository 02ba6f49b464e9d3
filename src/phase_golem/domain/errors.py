"""The errors of the domain: a caller broke a rule or gave text that does not parse."""

from __future__ import annotations


class DomainError(ValueError):
    """A rule of the domain was broken by the caller's request (not a bug)."""


class InvalidTransition(DomainError):
    pass


class ParseError(DomainError):
    pass

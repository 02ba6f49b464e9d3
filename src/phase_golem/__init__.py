"""Phase Golem: a durable orchestrator for AI coding agents working through a backlog."""

__version__ = "0.1.0"

"""Adapters to the agent CLIs, and the process runner they share."""

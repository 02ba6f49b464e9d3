"""Numbered SQL migrations per dialect, shipped as package data."""

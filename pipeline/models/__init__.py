"""Recommendation models, selectable by name."""

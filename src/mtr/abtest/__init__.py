"""A/B experiment analysis for interacting metrics."""

"""mtr.models."""

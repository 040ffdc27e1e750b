"""mtr.tuning."""

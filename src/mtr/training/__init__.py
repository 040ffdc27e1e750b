"""mtr.training."""

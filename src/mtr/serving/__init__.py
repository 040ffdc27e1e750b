"""mtr.serving."""

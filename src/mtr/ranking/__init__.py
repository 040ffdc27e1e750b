"""mtr.ranking."""

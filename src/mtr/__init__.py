"""mtr: multi-objective message ranking."""

__version__ = "0.1.0"

"""Adapters that turn public datasets into mtr training tables and schema.json."""

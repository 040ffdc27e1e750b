"""From raw event logs and public data to training tables, and from tables to batches."""

"""The ground-truth messaging world: users, catalog, logging policy, outcome model and oracle."""

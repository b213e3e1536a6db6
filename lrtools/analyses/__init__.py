"""Per-point measurements composed from regions and solvers; every function returns a table."""

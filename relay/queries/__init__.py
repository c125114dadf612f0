"""Read-only queries for operators: trace and failures."""

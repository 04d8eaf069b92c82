"""PostgreSQL-compatible hash sharding functions and shard maps (pure, no I/O)."""

"""The admin console: the `pgcat` / `pgbouncer` virtual database, PgBouncer's vocabulary."""

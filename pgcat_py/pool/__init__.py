"""Server connection pools: one per (pool, user, server address), and the cluster view."""

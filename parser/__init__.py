"""SQL classification for routing: read or write, tables, shard keys, custom commands."""

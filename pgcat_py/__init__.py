"""pgcat-py: a PostgreSQL connection pooler, query router and sharding proxy.

Speaks the PostgreSQL wire protocol to clients and servers, reads pgcat's ``pgcat.toml``.
"""

__version__ = "0.1.0"

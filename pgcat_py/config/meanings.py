"""What each pgcat.toml key means, for the generated reference (config/reference.py).

Kept beside the models rather than in them: the models stay short and readable, and the
text, drawn from reference/pgcat.md (pgcat's code, not its CONFIG.md) and from our own
extensions' design, lives in one place. A `Field(description=...)` on a model field takes
precedence over the entry here. Keyed by model class name, then by field name (not alias);
`EXTENSIONS` lists the keys pgcat does not have. tests/unit/config/test_reference.py fails
when a field has no meaning here, or a meaning names a field that no longer exists.
"""

from __future__ import annotations

GENERAL = {
    "host": "Listen address for clients and for the Prometheus exporter.",
    "port": "Client port (pgcat's code default; its example configs use 6432).",
    "enable_prometheus_exporter": "true serves Prometheus metrics over HTTP; unset or false: "
                                  "off (pgcat starts it only when explicitly true).",
    "prometheus_exporter_port": "Metrics port (a 16-bit signed integer, as in pgcat).",
    "connect_timeout": "Milliseconds a client may wait to check out a server connection, "
                       "opening one included.",
    "idle_timeout": "Milliseconds after which an idle server connection is closed.",
    "tcp_keepalives_idle": "Seconds idle before TCP keepalives start (client and server "
                           "sockets).",
    "tcp_keepalives_count": "Unanswered keepalives before a socket is dead.",
    "tcp_keepalives_interval": "Seconds between keepalives.",
    "tcp_user_timeout": "Linux TCP_USER_TIMEOUT in milliseconds (client and server sockets).",
    "log_client_connections": "Log each client connection.",
    "log_client_disconnections": "Log each client disconnection.",
    "dns_cache_enabled": "Cache server host name lookups; connections whose host now "
                         "resolves elsewhere are dropped.",
    "dns_max_ttl": "Seconds between refreshes of the DNS cache.",
    "shutdown_timeout": "Milliseconds a graceful shutdown (SIGINT) waits for clients to "
                        "finish.",
    "healthcheck_timeout": "Milliseconds the health check query (`;`) may take.",
    "healthcheck_delay": "A server connection idle longer than this many milliseconds is "
                         "health-checked before a client gets it.",
    "ban_time": "Seconds a failed server stays out of rotation.",
    "idle_client_in_transaction_timeout": "Milliseconds a client may sit idle inside a "
                                          "transaction before it is closed (25P03); 0 = never.",
    "server_lifetime": "Milliseconds after which a server connection is closed when next "
                       "idle.",
    "server_round_robin": "true: idle server connections are reused in turn (FIFO); false: "
                          "the most recent first (LIFO).",
    "worker_threads": "Worker processes sharing the port (SO_REUSEPORT), capped at the usable "
                      "CPUs and so that each gets at least 5 connections of the smallest pool "
                      "(pool_size is a total, shared out among them).",
    "autoreload": "Re-read the config file every this many milliseconds and apply it if it "
                  "changed; unset = off.",
    "tls_certificate": "PEM certificate: enables TLS for clients.",
    "tls_private_key": "PEM private key; required with tls_certificate.",
    "server_tls": "Ask servers for TLS (continue in plain text if refused, unless verifying).",
    "verify_server_certificate": "Verify server certificates and host names "
                                 "(libpq's sslmode=verify-full).",
    "admin_username": "User of the admin console (databases `pgcat` and `pgbouncer`).",
    "admin_password": "Password of the admin console.",
    "admin_auth_type": 'How admin logins authenticate: "md5", "trust", or "scram-sha-256" '
                       "(ours).",
    "validate_config": "Open min_pool_size connections at startup and reload, and fail if "
                       "they cannot be opened.",
    "auth_query": "Query fetching a user's md5 hash or SCRAM verifier from PostgreSQL (`$1` "
                  "is the user name), for users without a password here; inherited by pools.",
    "auth_query_user": "User that runs auth_query.",
    "auth_query_password": "Password of auth_query_user.",
    "max_client_conn": "Client connections accepted at once; more get 53300 (PgBouncer's "
                       "key).",
    "reserve_pool_size": "Extra server connections a pool may open for clients that waited "
                         "reserve_pool_timeout.",
    "reserve_pool_timeout": "Milliseconds a client waits before the reserve may open for it.",
    "server_reset_query": "Run at check-in when a client dirtied the session, instead of "
                          "pgcat's cleanup (RESET ALL / DEALLOCATE ALL); empty = pgcat's.",
    "unix_socket_dir": "Also listen on `<dir>/.s.PGSQL.<port>` (the admin console too), as "
                       "PgBouncer does; unset = TCP only.",
    "follow_promotions": "Ask the servers of shards with replicas pg_is_in_recovery(): a "
                         "promoted replica becomes the primary without a config change.",
    "role_check_interval": "Milliseconds between those role checks.",
    "lag_check_interval": "Milliseconds between measurements of replica lag (ban_replica_lag, "
                          "ban_replica_lag_bytes, read_your_writes).",
    "tls_mode": '"prefer": clients choose; "require": a client that did not ask for TLS gets '
                "28000 (needs tls_certificate).",
    "server_tls_ca_file": "PEM CA certificates server certificates must chain to when "
                          "verify_server_certificate is on; unset = the system store.",
    "client_login_timeout": "Milliseconds a client may take to log in (startup, TLS, "
                            "authentication) before it gets 08006 and is closed.",
    "client_stall_timeout": "Milliseconds a client holding a server may stall in the middle "
                            "of a message or stop reading a result before both are closed; "
                            "0 = never.",
}

POOL = {
    "pool_mode": '"transaction" or "session" (case-insensitive): the default for its users.',
    "load_balancing_mode": '"random", "loc" (least outstanding connections; also '
                           '"least_outstanding_connections"), or "round_robin" (ours).',
    "default_role": '"any", "primary" or "replica": where a query goes when nothing else '
                    "decides.",
    "query_parser_enabled": "Parse queries: needed for read/write splitting, automatic "
                            "sharding and plugins.",
    "query_parser_max_length": "Queries longer than this many bytes are not parsed; unset = "
                               "no limit.",
    "query_parser_read_write_splitting": "Send reads to replicas and writes to the primary "
                                         "(needs query_parser_enabled).",
    "primary_reads_enabled": "Let the primary serve reads too.",
    "connect_timeout": "Overrides general.connect_timeout for this pool; unset = general's.",
    "idle_timeout": "Overrides general.idle_timeout; unset = general's.",
    "checkout_failure_limit": "Disconnect a client after this many failed checkouts; unset "
                              "= never (an explicit 0 disconnects at the first).",
    "server_lifetime": "Overrides general.server_lifetime; unset = general's.",
    "sharding_function": '"pg_bigint_hash" (PostgreSQL\'s hash partitioning) or "sha1".',
    "automatic_sharding_key": "`table.column` (or `*.column`) whose value in a query picks "
                              "the shard.",
    "sharding_key_regex": "Regex whose first group, found in a comment, is the sharding key.",
    "shard_id_regex": "Regex whose first group, found in a comment, is the shard number.",
    "regex_search_limit": "Bytes of a query the two regexes look at.",
    "default_shard": 'Shard used when none is chosen: "shard_<n>", "random", '
                     '"random_healthy", or "fail" (ours: an error).',
    "auth_query": "Overrides general.auth_query; unset = general's.",
    "auth_query_user": "Overrides general.auth_query_user; unset = general's.",
    "auth_query_password": "Overrides general.auth_query_password; unset = general's.",
    "auth_query_pool_size": "pool_size of users without a [users] entry who log in through "
                            "auth_query (PgBouncer's default_pool_size).",
    "cleanup_server_connections": "RESET ALL / DEALLOCATE ALL at check-in after a client "
                                  "dirtied a session.",
    "log_client_parameter_status_changes": "Log ParameterStatus changes.",
    "prepared_statements_cache_size": "Prepared statements kept per server connection; "
                                      "0 = 500. Named statements work either way (in pgcat, "
                                      "0 switches them off).",
    "db_activity_based_routing": "pgcat's experimental read-your-writes routing.",
    "db_activity_init_delay": "Milliseconds; used by db_activity_based_routing.",
    "db_activity_ttl": "Seconds; used by db_activity_based_routing.",
    "table_mutation_cache_ms_ttl": "Milliseconds; used by db_activity_based_routing.",
    "plugins": "The pool's own plugins, same tables as [plugins]; they replace the global "
               "ones entirely.",
    "plugin_module": "A Python module whose route(statement) may move or refuse statements "
                     "(needs query_parser_enabled).",
    "shards": "The pool's shards, keyed 0, 1, ... without gaps.",
    "users": "The pool's users (keys 0, 1, ... by convention).",
    "reserve_pool_size": "Overrides general.reserve_pool_size; unset = general's.",
    "reserve_pool_timeout": "Overrides general.reserve_pool_timeout; unset = general's.",
    "server_reset_query": "Overrides general.server_reset_query; unset = general's.",
    "replica_to_primary_failover_enabled": "Reads go to the primary when no replica of the "
                                           "shard can serve them.",
    "ban_replica_lag": "Milliseconds behind its primary past which a replica takes no reads "
                       "until it catches up; 0 = no limit.",
    "ban_replica_lag_bytes": "Bytes of WAL behind, the same; 0 = no limit.",
    "read_your_writes": "After a client's transaction on the primary, its reads go only to "
                        "replicas that have replayed it (else to the primary).",
    "write_functions": "Functions whose calls make a SELECT a write (besides nextval & co. "
                       "and the VOLATILE ones learned from pg_proc); a trailing * matches a "
                       "prefix.",
    "cross_shard_queries": "A lone SELECT with no sharding key, or keys on several shards, "
                           "runs on every shard concerned and the results are merged (needs "
                           "automatic_sharding_key).",
    "cross_shard_max_rows": "Groups (or DISTINCT rows) a cross-shard merge may hold; past it "
                            "the query fails with 53400.",
    "cross_shard_writes": '"allow": a multi-row INSERT is split by its rows\' shards, UPDATE / '
                          "DELETE without a key run on every shard and COPY FROM STDIN rows go "
                          "to their key's shard (outside explicit transactions; no two-phase "
                          'commit); "refuse" (default): pgcat\'s behaviour.',
}

USER = {
    "username": "The name clients log in with (and the server user, unless server_username).",
    "password": "The client's password (and the server's, unless server_password); required "
                "unless the pool has auth_query.",
    "auth_type": '"md5", "trust", or "scram-sha-256" (ours).',
    "server_username": "User towards PostgreSQL; unset = username.",
    "server_password": "Password towards PostgreSQL; unset = password.",
    "pool_size": "Most server connections per server of the pool for this user.",
    "min_pool_size": "Idle connections kept open per server; unset = 0.",
    "pool_mode": "Overrides the pool's pool_mode; unset = the pool's.",
    "server_lifetime": "Overrides the pool's server_lifetime; unset = the pool's.",
    "statement_timeout": "Milliseconds after which the proxy cancels a query; 0 = never.",
    "connect_timeout": "Overrides the pool's connect_timeout; unset = the pool's.",
    "idle_timeout": "Overrides the pool's idle_timeout; unset = the pool's.",
}

SHARD = {
    "database": "The database's name on the servers.",
    "mirrors": "Servers that get a copy of the traffic of `servers[server_index]`.",
    "servers": 'The shard\'s servers; role is "primary" (at most one), "replica" or '
               '"mirror" (case-insensitive).',
}

PLUGINS = {
    "intercept": "Answers configured queries without a server.",
    "table_access": "Refuses queries on the listed tables.",
    "query_logger": "Logs every parsed query.",
    "prewarmer": "Runs queries on every new server connection.",
}
QUERY_LOGGER = {"enabled": "Log every parsed query at INFO."}
TABLE_ACCESS = {"enabled": "Switch the plugin on.",
                "tables": "Tables refused (matched on the last part of the name)."}
PREWARMER = {"enabled": "Switch the plugin on.",
             "queries": "Run on every new server connection before a client gets it; a "
                        "failure fails the connection."}
INTERCEPT = {"enabled": "Switch the plugin on.",
             "queries": "The canned answers, one table each."}
INTERCEPT_QUERY = {
    "query": "The query answered (compared lower-cased); `${USER}` and `${DATABASE}` are "
             "filled in per connection.",
    "columns": "The columns, each [name, type].",
    "result": "The rows, each an array of strings, one per column.",
}

MEANINGS: dict[str, dict[str, str]] = {
    "General": GENERAL, "Pool": POOL, "User": USER, "Shard": SHARD, "Plugins": PLUGINS,
    "QueryLogger": QUERY_LOGGER, "TableAccess": TABLE_ACCESS, "Prewarmer": PREWARMER,
    "Intercept": INTERCEPT, "InterceptQuery": INTERCEPT_QUERY,
}

# Keys pgcat does not have, by model class name.
EXTENSIONS: dict[str, frozenset[str]] = {
    "General": frozenset({
        "max_client_conn", "reserve_pool_size", "reserve_pool_timeout", "server_reset_query",
        "unix_socket_dir", "follow_promotions", "role_check_interval", "lag_check_interval",
        "tls_mode", "server_tls_ca_file", "client_login_timeout", "client_stall_timeout"}),
    "Pool": frozenset({
        "auth_query_pool_size", "plugin_module", "reserve_pool_size", "reserve_pool_timeout",
        "server_reset_query", "replica_to_primary_failover_enabled", "ban_replica_lag",
        "ban_replica_lag_bytes", "read_your_writes", "write_functions", "cross_shard_queries",
        "cross_shard_max_rows", "cross_shard_writes"}),
}

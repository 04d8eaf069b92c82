"""Models of pgcat's query plugins: `[plugins]` and `[pools.NAME.plugins]` (pgcat.md §9.1).

As in pgcat, every field of a plugin table is required, and a pool's `plugins` table replaces
the global one entirely. The intercept plugin's `${USER}` / `${DATABASE}` are pgcat's own
placeholders, filled in per connection, so these models do not resolve environment references.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PluginSection(BaseModel):
    """A plugin table: frozen and strictly typed, like the rest of the config."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore", populate_by_name=True)


class QueryLogger(PluginSection):
    """Logs every parsed query at INFO."""

    enabled: bool


class TableAccess(PluginSection):
    """Refuses queries touching the listed tables (matched on the last name component)."""

    enabled: bool
    tables: list[str]


class Prewarmer(PluginSection):
    """Runs these queries on every new server connection before it is used."""

    enabled: bool
    queries: list[str]


class InterceptQuery(PluginSection):
    """One canned answer: a query (compared lower-cased), its columns and its rows."""

    query: str
    # `schema` would shadow a BaseModel attribute; the TOML key is still `schema`.
    columns: list[list[str]] = Field(alias="schema")
    result: list[list[str]]

    @model_validator(mode="after")
    def _rows_fit_schema(self) -> InterceptQuery:
        # pgcat would send these as they are and the client would fail on the reply.
        for index, column in enumerate(self.columns):
            if len(column) != 2:
                raise ValueError(f"schema.{index}: expected [name, type], got {column!r}")
        for index, row in enumerate(self.result):
            if len(row) != len(self.columns):
                raise ValueError(f"result.{index}: {len(row)} values for "
                                 f"{len(self.columns)} columns of schema")
        return self


class Intercept(PluginSection):
    """Answers the configured queries without a server (IDE and driver metadata probes)."""

    enabled: bool
    queries: dict[str, InterceptQuery]


class Plugins(PluginSection):
    """The four plugins pgcat knows, each optional."""

    intercept: Intercept | None = None
    table_access: TableAccess | None = None
    query_logger: QueryLogger | None = None
    prewarmer: Prewarmer | None = None

    def enabled_names(self) -> list[str]:
        """Names of the plugins switched on, in pgcat's run order."""
        ordered = [
            ("query_logger", self.query_logger),
            ("intercept", self.intercept),
            ("table_access", self.table_access),
            ("prewarmer", self.prewarmer),
        ]
        return [name for name, plugin in ordered if plugin is not None and plugin.enabled]

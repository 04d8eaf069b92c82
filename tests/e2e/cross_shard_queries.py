"""A seeded generator of the SELECTs cross-shard merging supports, over test_cross_shard's
`data (id, grp, val numeric, f float8, name text, flag bool, small int)`.

A query that ORDER BY orders completely starts with the ORDERED comment, so the test
compares its rows in order; others are compared as multisets. Float values are multiples
of 1/4, so sums and averages are exact whatever the order of addition.
"""

from __future__ import annotations

import datetime
import random

ORDERED = "/* ordered */ "
WHERE = ["small > 1", "grp IS NULL", "id % 7 = 3", "val < 0", "id IN (3, 50, 77, 120, 301)",
         "flag", "f >= 0 AND grp < 5", "id = 42", "name IS NOT NULL",
         "id = ANY(ARRAY[5, 6, 7, 8])", "ts < '2024-10-27 03:00+02'", "d > '1999-01-01'"]
COLUMNS = ["id", "grp", "val", "f", "flag", "small", 'name COLLATE "C" AS cname',
           "small * 2 AS dbl", "ts", "d"]
SORTABLE = ["grp", "val", "f", "flag", "small", "cname", "dbl", "ts", "d"]
KEYS = ["grp", "small", "flag", "name", "d"]
AGGREGATES = ["count(*)", "count(val)", "sum(val)", "sum(small)", "sum(f)", "min(id)",
              "max(val)", "min(f)", "max(grp)", "avg(val)", "avg(small)", "avg(f)",
              "avg(grp)", "bool_and(flag)", "bool_or(flag)", "count(*) FILTER (WHERE small > 1)",
              "sum(val) FILTER (WHERE flag)", "avg(f) FILTER (WHERE grp > 2)",
              "count(DISTINCT small)", "sum(DISTINCT small)", "avg(DISTINCT small)",
              "min(DISTINCT f)", "stddev(val)", "var_pop(small)", "variance(grp)", "max(ts)",
              "min(d)", "sum(small) * 2 / count(*)", "round(avg(val), 1) + max(grp)"]
HAVING = ["count(DISTINCT small) > 3", "count(*) > 20", "sum(val) > 0", "avg(small) >= 2",
          "max(id) < 390 OR min(f) < -20", "NOT bool_or(flag)", "sum(val) IS NULL"]


def fully_ordered(sql: str) -> bool:
    return sql.startswith(ORDERED)


def canonical(rows: list[tuple[object, ...]]) -> list[str]:
    """Rows as comparable text (an aware datetime by its instant, whatever its tzinfo)."""
    return sorted(repr(tuple(v.isoformat() if isinstance(v, datetime.datetime) else v
                             for v in row)) for row in rows)


class QueryGenerator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def query(self) -> str:
        kind = self.rng.random()
        if kind < 0.4:
            return self.plain()
        if kind < 0.85:
            return self.grouped()
        return self.distinct()

    def _where(self) -> str:
        return f" WHERE {self.rng.choice(WHERE)}" if self.rng.random() < 0.5 else ""

    def _direction(self) -> str:
        rng = self.rng
        return rng.choice(["", " ASC", " DESC"]) + rng.choice(["", " NULLS FIRST", " NULLS LAST"])

    def _limit(self) -> str:
        rng = self.rng
        if rng.random() < 0.1:
            return f" OFFSET {rng.randrange(0, 50)}"
        if rng.random() < 0.5:
            return ""
        return f" LIMIT {rng.randrange(0, 30)}" + (
            f" OFFSET {rng.randrange(0, 20)}" if rng.random() < 0.5 else "")

    def plain(self) -> str:
        rng = self.rng
        columns = rng.sample(COLUMNS, rng.randrange(1, 5))
        if rng.random() < 0.1:
            columns = ["*"]
        sql = f"SELECT {', '.join(columns)} FROM data{self._where()}"
        if rng.random() < 0.3:
            return sql
        names = [c.split(" AS ")[-1] for c in columns]
        keys = []
        for _ in range(rng.randrange(0, 3)):
            choice = rng.choice(SORTABLE)
            if choice in names and rng.random() < 0.4:
                keys.append(str(names.index(choice) + 1))  # by position
            elif choice in ("cname", "dbl") and choice not in names:
                keys.append('name COLLATE "C"' if choice == "cname" else "small * 2")
            else:
                keys.append(choice)
        keys = [k + self._direction() for k in keys] + ["id" + self._direction()]
        return f"{ORDERED}{sql} ORDER BY {', '.join(keys)}{self._limit()}"

    def grouped(self) -> str:
        rng = self.rng
        keys = rng.sample(KEYS, rng.randrange(0, 3))
        aggregates = rng.sample(AGGREGATES, rng.randrange(1, 4))
        if rng.random() < 0.1:
            aggregates.append(aggregates[0])  # the same item twice keeps two columns
        sql = f"SELECT {', '.join(keys + aggregates)} FROM data{self._where()}"
        if keys:
            sql += f" GROUP BY {', '.join(keys)}"
        if rng.random() < 0.4:
            sql += f" HAVING {rng.choice(HAVING)}"
        if not keys:
            return ORDERED + sql  # one row
        if rng.random() < 0.3:
            return sql
        order = []
        if rng.random() < 0.5:
            position = rng.randrange(len(keys), len(keys) + len(aggregates)) + 1
            order.append(f"{position}{self._direction()}")
        elif rng.random() < 0.3:
            order.append(f"max(id){self._direction()}")  # an aggregate not selected
        order += [_sortable(k) + self._direction() for k in keys]
        return f"{ORDERED}{sql} ORDER BY {', '.join(order)}{self._limit()}"

    def distinct(self) -> str:
        rng = self.rng
        keys = rng.sample(["grp", "small", "flag", 'name COLLATE "C" AS cname'],
                          rng.randrange(1, 4))
        sql = f"SELECT DISTINCT {', '.join(keys)} FROM data{self._where()}"
        if rng.random() < 0.3:
            return sql
        names = [k.split(" AS ")[-1] for k in keys]
        order = [(str(i + 1) if rng.random() < 0.3 else n) + self._direction()
                 for i, n in enumerate(names)]
        rng.shuffle(order)
        return f"{ORDERED}{sql} ORDER BY {', '.join(order)}{self._limit()}"


def _sortable(key: str) -> str:
    return 'name COLLATE "C"' if key == "name" else key

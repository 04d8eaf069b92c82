"""parser.merge_plan: what each shard runs for a cross-shard SELECT, how the proxy merges,
and which constructs are refused (0A000) instead of answered wrongly."""

from __future__ import annotations

import pytest

from parser.merge_plan import (
    ColumnRef,
    Combine,
    Compare,
    Constant,
    Logic,
    MergedColumn,
    MergeUnsupported,
    SortKey,
    plan_merge,
)
from parser.settings import ShardingKey


def test_plain_select_passes_rows_through() -> None:
    plan = plan_merge("SELECT id, name FROM data WHERE id > 3")
    assert not plan.grouped and plan.order == () and plan.hidden == 0
    assert plan.shard_sql == "SELECT id, name FROM data WHERE id > 3"


def test_limit_offset_is_pushed_down_as_limit_plus_offset() -> None:
    plan = plan_merge("SELECT id FROM data ORDER BY id DESC LIMIT 5 OFFSET 2")
    assert plan.shard_sql == "SELECT id FROM data ORDER BY id DESC LIMIT 7"
    assert (plan.limit, plan.offset) == (5, 2)
    assert plan.order == (SortKey(0, descending=True, nulls_first=True),)


def test_order_by_position_alias_and_nulls() -> None:
    plan = plan_merge("SELECT id AS i, val FROM data ORDER BY 2 NULLS FIRST, i DESC NULLS LAST")
    assert plan.order == (SortKey(1, False, True), SortKey(0, True, False))


def test_order_by_a_column_not_selected_is_a_hidden_column() -> None:
    plan = plan_merge("SELECT id FROM data ORDER BY val, small DESC")
    assert plan.hidden == 2
    assert plan.shard_sql.startswith("SELECT id, val AS __pgcat_order_0, small AS __pgcat_order_1")
    assert [k.column for k in plan.order] == [-2, -1]  # counted from the end of the row


def test_star_with_order_by_name_uses_a_hidden_column() -> None:
    plan = plan_merge("SELECT * FROM data ORDER BY id")
    assert plan.hidden == 1 and plan.order[0].column == -1


def test_collate_c_marks_a_text_key_comparable() -> None:
    plan = plan_merge('SELECT name COLLATE "C" AS n FROM data ORDER BY n')
    assert plan.order[0].c_collation
    assert not plan_merge("SELECT name FROM data ORDER BY name").order[0].c_collation


def test_avg_becomes_sum_and_count() -> None:
    plan = plan_merge("SELECT avg(val) FROM data")
    assert plan.grouped
    assert plan.shard_sql == "SELECT SUM(val) AS __pgcat_0, COUNT(val) AS __pgcat_1 FROM data"
    assert plan.columns == (MergedColumn(Combine.AVG, (0, 1)),)


def test_group_by_with_having_and_order_by_an_aggregate_not_selected() -> None:
    plan = plan_merge("SELECT grp, count(*) FROM data GROUP BY grp HAVING sum(val) > 10 "
                      "ORDER BY max(id) DESC LIMIT 3")
    assert "HAVING" not in plan.shard_sql and "LIMIT" not in plan.shard_sql
    assert "ORDER" not in plan.shard_sql and "GROUP BY grp" in plan.shard_sql
    assert [c.combine for c in plan.columns] == [Combine.KEY, Combine.COUNT, Combine.SUM,
                                                  Combine.MAX]
    assert plan.group_keys == (0,) and plan.hidden == 2 and plan.limit == 3
    assert plan.having == Compare(">", ColumnRef(2), Constant(10))
    assert plan.order == (SortKey(3, True, True),)


def test_having_logic_and_boolean_aggregates() -> None:
    plan = plan_merge("SELECT grp FROM data GROUP BY grp HAVING NOT bool_or(flag) "
                      "OR count(*) >= 2.5")
    assert isinstance(plan.having, Logic) and plan.having.op == "or"


def test_group_key_not_selected_is_hidden() -> None:
    plan = plan_merge("SELECT count(*) FROM data GROUP BY grp")
    assert plan.group_keys == (1,) and plan.hidden == 1


def test_filter_stays_on_the_partial() -> None:
    plan = plan_merge("SELECT count(*) FILTER (WHERE small > 1) FROM data")
    assert "FILTER(WHERE small > 1)" in plan.shard_sql


def test_distinct_without_aggregates_groups_by_every_column() -> None:
    plan = plan_merge("SELECT DISTINCT grp, small FROM data ORDER BY small")
    assert plan.grouped and plan.distinct and plan.group_keys == (0, 1)
    assert plan.shard_sql.startswith("SELECT DISTINCT")


@pytest.mark.parametrize(("sql", "named"), [
    ("SELECT row_number() OVER () FROM data", "window function"),
    ("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY id) FROM data", "across shards"),
    ("SELECT grp AS small, count(*) FROM data GROUP BY small", "output column name"),
    ("SELECT 'x', count(DISTINCT grp) FROM data", "beside a DISTINCT"),
    ("SELECT sum(val) * $1 FROM data", "parameter"),
    ("SELECT string_agg(DISTINCT name, ',' ORDER BY name) FROM data", "ordered aggregate"),
    ("SELECT string_agg(name, sep) FROM data", "not a constant"),
    ("SELECT json_agg(id) FROM data", "JSON_AGG"),
    ("SELECT id FROM data WHERE grp IN (SELECT 1)", "subquery"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH"),
    ("SELECT id FROM data INTERSECT SELECT id FROM data", "INTERSECT"),
    ("SELECT id FROM data UNION SELECT 1 UNION ALL SELECT 2", "UNION inside a UNION ALL"),
    ("SELECT count(*) FROM data UNION ALL SELECT 1", "aggregate in a branch"),
    ("SELECT DISTINCT ON (grp) grp FROM data", "DISTINCT ON"),
    ("SELECT id FROM data LIMIT $1", "LIMIT"),
    ("SELECT grp FROM data GROUP BY ROLLUP (grp)", "ROLLUP"),
    ("SELECT 1; SELECT 2", "several statements"),
])
def test_unmergeable_constructs_are_refused_by_name(sql: str, named: str) -> None:
    with pytest.raises(MergeUnsupported, match=named):
        plan_merge(sql)


KEYS = (ShardingKey("data", "id"), ShardingKey("users", "id"))


@pytest.mark.parametrize("sql", [
    "SELECT d.id FROM data d JOIN users u ON d.id = u.id",
    "SELECT * FROM data d, users u WHERE u.id = d.id AND d.grp = 1",
    "SELECT d.id, c.name FROM data d JOIN countries c ON c.code = d.country",
    "SELECT count(*) FROM data d LEFT JOIN users u ON (d.id = u.id)",
])
def test_joins_each_shard_answers_whole_are_merged(sql: str) -> None:
    plan_merge(sql, KEYS)


@pytest.mark.parametrize("sql", [
    "SELECT d.id FROM data d JOIN users u ON d.grp = u.id",
    "SELECT * FROM data a, data b WHERE a.grp = b.grp",
    "SELECT d.id FROM data d JOIN users u ON d.id = u.id OR d.grp = 1",
])
def test_a_join_of_sharded_tables_off_their_keys_is_refused(sql: str) -> None:
    with pytest.raises(MergeUnsupported, match="join of sharded tables"):
        plan_merge(sql, KEYS)


def test_distinct_aggregates_group_the_shards_by_their_value() -> None:
    plan = plan_merge("SELECT grp, count(DISTINCT small), sum(val) FROM data GROUP BY 1")
    assert plan.shard_sql.endswith("GROUP BY grp, small")
    assert [c.combine for c in plan.columns] == [Combine.KEY, Combine.COUNT_DISTINCT,
                                                  Combine.SUM]
    assert plan.group_keys == (0,)


def test_group_by_position_is_an_expression_for_the_shard() -> None:
    plan = plan_merge("SELECT avg(val), grp AS g FROM data GROUP BY 2")
    assert plan.shard_sql.endswith("GROUP BY grp")


def test_string_agg_and_array_agg_concatenate_their_partials() -> None:
    plan = plan_merge("SELECT string_agg(name, '; '), array_agg(id) FROM data")
    assert plan.columns == (MergedColumn(Combine.STRING_AGG, (0,), "; "),
                            MergedColumn(Combine.ARRAY_AGG, (1,)))


def test_a_plain_select_that_needs_no_rewrite_is_sent_as_the_client_wrote_it() -> None:
    sql = "select id, $$a'b$$ AS s from data where name ~* E'^x\\n' order by id limit 5"
    assert plan_merge(sql).shard_sql == sql
    assert plan_merge(sql + " offset 2").shard_sql != sql + " offset 2"  # LIMIT 7, no OFFSET


def test_an_ordered_aggregate_groups_the_shards_by_its_order_values() -> None:
    plan = plan_merge("SELECT grp, string_agg(name, ',' ORDER BY id DESC) FROM data "
                      "GROUP BY grp")
    assert plan.shard_sql.endswith("GROUP BY grp, id")
    assert "STRING_AGG(name, ',')" in plan.shard_sql
    column = plan.columns[1]
    assert column.combine is Combine.STRING_AGG and column.order == (SortKey(0, True, True),)


def test_fetch_first_is_a_limit() -> None:
    plan = plan_merge("SELECT id FROM data ORDER BY id OFFSET 2 ROWS FETCH FIRST 3 ROWS ONLY")
    assert (plan.limit, plan.offset) == (3, 2) and plan.shard_sql.endswith("LIMIT 5")
    assert plan_merge("SELECT id FROM data ORDER BY id FETCH FIRST ROW ONLY").limit == 1
    with pytest.raises(MergeUnsupported, match="WITH TIES"):
        plan_merge("SELECT id FROM data ORDER BY id FETCH FIRST 3 ROWS WITH TIES")


def test_union_all_is_a_plain_plan_and_union_a_distinct_one() -> None:
    plan = plan_merge("SELECT id FROM data WHERE grp = 1 UNION ALL SELECT id FROM data "
                      "ORDER BY 1 DESC LIMIT 5 OFFSET 1")
    assert not plan.grouped and plan.shard_sql.endswith("ORDER BY 1 DESC LIMIT 6")
    plan = plan_merge("SELECT grp, small FROM data UNION SELECT small, grp FROM data")
    assert plan.grouped and plan.distinct and plan.group_keys == (0, 1)


def test_distinct_aggregates_of_two_expressions_group_the_shards_by_both() -> None:
    plan = plan_merge("SELECT grp, count(DISTINCT small), count(DISTINCT name) FROM data "
                      "GROUP BY grp")
    assert plan.shard_sql.endswith("GROUP BY grp, small, name")
    assert [c.sources for c in plan.columns] == [(0,), (1,), (2,)]


def test_a_repeated_select_item_keeps_its_own_column() -> None:
    plan = plan_merge("SELECT count(*), count(*) AS n, grp, grp FROM data GROUP BY grp")
    assert [c.combine for c in plan.columns] == [Combine.COUNT, Combine.COUNT, Combine.KEY,
                                                  Combine.KEY]
    assert plan.hidden == 0 and plan.columns[0] == plan.columns[1]


def test_an_expression_over_aggregates_is_left_to_postgresql_after_the_merge() -> None:
    plan = plan_merge("SELECT grp, sum(val) / count(*) AS ratio, grp || ':' || count(*), "
                      "count(*) FROM data GROUP BY grp")
    ratio, label = plan.columns[1], plan.columns[2]
    assert ratio.combine is Combine.EXPRESSION and ratio.expression == "v.c4 / v.c3"
    assert ratio.uses == (3, 4) and plan.columns[3].combine is Combine.COUNT
    assert label.expression == "v.c0 || ':' || v.c3" and label.uses == (0, 3)
    assert plan.hidden == 1  # sum(val)


def test_having_and_order_by_over_aggregates_become_hidden_expressions() -> None:
    plan = plan_merge("SELECT grp FROM data GROUP BY grp HAVING sum(val) / count(*) > 1 "
                      "ORDER BY max(id) - min(id) DESC")
    having, order = (i for i, c in enumerate(plan.columns) if c.combine is Combine.EXPRESSION)
    assert plan.columns[having].expression.endswith("> 1")
    assert plan.having == Compare("=", ColumnRef(having), Constant(True))
    assert plan.order[0].column == order and "-" in plan.columns[order].expression


def test_a_user_defined_aggregate_is_refused() -> None:
    # Without the catalog it looks like any function: each shard would give its own result.
    mine = frozenset({"my_median"})
    with pytest.raises(MergeUnsupported, match="user-defined aggregate my_median"):
        plan_merge("SELECT my_median(v) FROM data", (), mine)
    with pytest.raises(MergeUnsupported, match="my_median"):
        plan_merge("SELECT k, MY_MEDIAN(v) FROM data GROUP BY k", (), mine)
    assert plan_merge("SELECT my_scalar(v) FROM data", (), mine) is not None

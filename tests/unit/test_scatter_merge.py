"""pgcat_py.scatter, the sans-IO parts: PostgreSQL's text output for merged numbers, the
numeric division of avg, ORDER BY keys, partial aggregates folded per group, HAVING."""

from __future__ import annotations

from decimal import Decimal

import pytest

from parser.merge_plan import plan_merge
from pgcat_py.protocol.errors import ProxyError
from pgcat_py.scatter.combine import GroupMerger, sort_key
from pgcat_py.scatter.values import (
    FLOAT8,
    INT4,
    INT8,
    NUMERIC,
    TEXT,
    float8_text,
    numeric_divide,
    numeric_from_binary,
    numeric_text,
    numeric_to_binary,
    variance,
)


@pytest.mark.parametrize(("value", "text"), [
    (1.5, b"1.5"), (1e15, b"1e+15"), (123456789012345.0, b"123456789012345"),
    (1e-5, b"1e-05"), (0.0001, b"0.0001"), (-0.0, b"-0"), (0.1 + 0.2, b"0.30000000000000004"),
    (float("nan"), b"NaN"), (float("-inf"), b"-Infinity"), (-2.25e20, b"-2.25e+20"),
])
def test_float8_text_is_float8out(value: float, text: bytes) -> None:
    assert float8_text(value) == text


@pytest.mark.parametrize(("total", "count", "text"), [
    ("3", 2, "1.5000000000000000"),  # SELECT avg(x) FROM (VALUES (1), (2))
    ("10", 3, "3.3333333333333333"),
    ("12345.67", 7, "1763.6671428571428571"),
    ("-1", 3, "-0.33333333333333333333"),
    ("0", 5, "0.00000000000000000000"),
    ("100000", 3, "33333.333333333333"),
])
def test_avg_divides_as_numeric_div(total: str, count: int, text: str) -> None:
    assert numeric_text(numeric_divide(Decimal(total), count)) == text.encode()


def test_sort_key_orders_nulls_and_directions() -> None:
    plan = plan_merge("SELECT a, b FROM t ORDER BY a DESC NULLS LAST, b")
    key = sort_key(plan.order, [INT4, FLOAT8], [False, False])
    rows = [[b"1", b"2"], [None, b"0"], [b"3", b"NaN"], [b"3", b"-1"], [b"1", b"1"]]
    assert sorted(rows, key=key) == [[b"3", b"-1"], [b"3", b"NaN"], [b"1", b"1"],
                                     [b"1", b"2"], [None, b"0"]]


def test_text_sort_needs_the_c_collation() -> None:
    with pytest.raises(ProxyError, match="COLLATE"):
        sort_key(plan_merge("SELECT name FROM t ORDER BY name").order, [TEXT], [False])
    key = sort_key(plan_merge('SELECT name COLLATE "C" FROM t ORDER BY 1').order, [TEXT],
                   [False])
    assert sorted([[b"b"], [b"B"], [b"a"]], key=key) == [[b"B"], [b"a"], [b"b"]]


def test_groups_fold_partials_and_having_filters() -> None:
    plan = plan_merge("SELECT g, count(*), avg(v), min(v) FROM t GROUP BY g "
                      "HAVING count(*) > 2")
    # shard columns: g, count, sum(v), count(v), min(v)
    merger = GroupMerger(plan, [INT4, INT8, NUMERIC, INT8, NUMERIC], max_rows=10)
    merger.add([b"1", b"2", b"3.0", b"2", b"1.0"])
    merger.add([b"1", b"1", b"0.50", b"1", b"0.50"])
    merger.add([b"2", b"2", None, b"0", None])
    # SELECT 3.50 / 3 in PostgreSQL: 1.16666666666666666667
    assert merger.having(merger.rows()) == [[b"1", b"3", b"1.16666666666666666667", b"0.50"]]


def test_numeric_group_keys_that_are_equal_are_one_group() -> None:
    plan = plan_merge("SELECT v, count(*) FROM t GROUP BY v")
    merger = GroupMerger(plan, [NUMERIC, INT8], max_rows=10)
    merger.add([b"1.0", b"1"])
    merger.add([b"1.00", b"2"])
    assert merger.rows() == [[b"1.0", b"3"]]


def test_the_group_cap_is_a_clear_error() -> None:
    merger = GroupMerger(plan_merge("SELECT g, count(*) FROM t GROUP BY g"), [INT4, INT8],
                         max_rows=1)
    merger.add([b"1", b"1"])
    with pytest.raises(ProxyError, match="cross_shard_max_rows") as raised:
        merger.add([b"2", b"1"])
    assert raised.value.sqlstate == "53400"


def test_min_of_text_is_refused() -> None:
    with pytest.raises(ProxyError, match="min"):
        GroupMerger(plan_merge("SELECT min(name) FROM t"), [TEXT], max_rows=1)


def test_sums_of_integers_and_floats_keep_their_types() -> None:
    plan = plan_merge("SELECT sum(i), sum(f), count(*) FROM t")
    merger = GroupMerger(plan, [INT8, FLOAT8, INT8], max_rows=1)
    merger.add([b"5", b"0.5", b"1"])
    merger.add([None, b"1e+15", b"0"])
    assert merger.rows() == [[b"5", b"1.0000000000000005e+15", b"1"]]


@pytest.mark.parametrize("text", ["0", "1", "-1", "12345.678", "0.0001", "100000000", "-0.50",
                                  "3.14159265358979323846", "0.00", "NaN"])
def test_numeric_binary_round_trips_as_numeric_send(text: str) -> None:
    value = Decimal(text)
    encoded = numeric_to_binary(value)
    assert numeric_text(numeric_from_binary(encoded)) == numeric_text(value)


def test_numeric_binary_is_base_10000_digits() -> None:
    # SELECT numeric_send(12345.678): ndigits 3, weight 1, sign +, dscale 3, 1 2345 6780
    assert numeric_to_binary(Decimal("12345.678")).hex() == "0003000100000003000109291a7c"


def test_array_agg_and_string_agg_partials_join() -> None:
    plan = plan_merge("SELECT array_agg(i), string_agg(s, '-') FROM t")
    merger = GroupMerger(plan, [1007, TEXT], max_rows=1)  # int4[]
    merger.add([b"{1,NULL}", b"a-b"])
    merger.add([None, None])
    merger.add([b"{3}", b"c"])
    assert merger.rows() == [[b"{1,NULL,3}", b"a-b-c"]]


@pytest.mark.parametrize(("sample", "root", "text"), [
    (True, False, b"1.6666666666666667"), (True, True, b"1.2909944487358056"),
    (False, False, b"1.2500000000000000"), (False, True, b"1.1180339887498948"),
])
def test_variance_and_stddev_from_merged_partials(sample: bool, root: bool, text: bytes) -> None:
    # var_samp(x) over 1, 2, 3, 4 in PostgreSQL: 1.6666666666666667
    assert numeric_text(variance(4, Decimal(10), Decimal(30), sample=sample, root=root) or
                        Decimal("NaN")) == text


def test_numeric_sums_are_exact_past_28_digits() -> None:
    plan = plan_merge("SELECT sum(v) FROM t")
    merger = GroupMerger(plan, [NUMERIC], max_rows=1)
    merger.add([b"12345678901234567890123456789.5"])
    merger.add([b"0.25"])
    assert merger.rows() == [[b"12345678901234567890123456789.75"]]

"""xact_bucket: the transaction-latency histogram's bucket, as bisect_right would pick it."""

from __future__ import annotations

from bisect import bisect_right

from hypothesis import given
from hypothesis import strategies as st

from pgcat_py.backend.server import XACT_TIME_BOUNDS, xact_bucket


@given(st.floats(min_value=0.0, max_value=100.0))
def test_bucket_is_bisect_right(took: float) -> None:
    assert xact_bucket(took) == bisect_right(XACT_TIME_BOUNDS, took)


def test_each_bound_opens_the_next_bucket() -> None:
    for index, bound in enumerate(XACT_TIME_BOUNDS):
        assert xact_bucket(bound) == index + 1
        assert xact_bucket(bound * 0.999) == index
    assert xact_bucket(1e9) == len(XACT_TIME_BOUNDS)
    assert sorted(XACT_TIME_BOUNDS) == XACT_TIME_BOUNDS

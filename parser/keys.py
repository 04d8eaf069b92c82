"""Key plans: where the shard keys of a query shape come from, and how plans combine.

The sqlglot analysis of a shape cannot know literal values (they are placeholders), so it
yields a KeyPlan: a status and, when FOUND, the sources of the keys, each a SlotRef (the n-th
literal of the query, maybe negated or cast) or a ParamRef (a Bind parameter). `resolve`
turns a plan into ShardKeys with the literals of the query at hand.

Combining follows what the rows need. Under AND, one known key is enough to confine the rows
(`id = 5 AND f(x)`), so FOUND wins; under OR, every branch must be confined
(`id = 5 OR name = 'x'` may be anywhere), so ALL and UNKNOWN win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from parser.classification import (
    ALL_SHARDS,
    NO_KEYS,
    UNKNOWN_KEYS,
    KeyStatus,
    KeyValue,
    ParamRef,
    ShardKeys,
)
from parser.values import cast_value, literal_value, negate_value, public_value


class SlotRef(NamedTuple):
    """The literal at `slot` in the query's literals, negated and/or cast as written."""

    slot: int
    negate: bool = False
    cast: str | None = None


Source = SlotRef | ParamRef


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """A status and, when FOUND, where each key comes from."""

    status: KeyStatus
    sources: tuple[Source, ...] = ()

    @property
    def needs_literals(self) -> bool:
        """True when resolving the plan reads literal values (so it differs per query)."""
        return any(type(source) is SlotRef for source in self.sources)


NO_PLAN = KeyPlan(KeyStatus.NONE)
ALL_PLAN = KeyPlan(KeyStatus.ALL)
UNKNOWN_PLAN = KeyPlan(KeyStatus.UNKNOWN)

# Which status wins when neither plan is FOUND (AND) or when one is not FOUND (OR).
_AND_RANK = {KeyStatus.NONE: 0, KeyStatus.ALL: 1, KeyStatus.UNKNOWN: 2}
_OR_RANK = {KeyStatus.NONE: 0, KeyStatus.FOUND: 1, KeyStatus.UNKNOWN: 2, KeyStatus.ALL: 3}


def found(*sources: Source) -> KeyPlan:
    """A FOUND plan with these sources."""
    return KeyPlan(KeyStatus.FOUND, sources)


def both(left: KeyPlan, right: KeyPlan) -> KeyPlan:
    """Rows satisfying both: FOUND if either is (keys of both), else the stronger status."""
    if left.status is KeyStatus.FOUND or right.status is KeyStatus.FOUND:
        return KeyPlan(KeyStatus.FOUND, left.sources + right.sources)
    return left if _AND_RANK[left.status] >= _AND_RANK[right.status] else right


def either(left: KeyPlan, right: KeyPlan) -> KeyPlan:
    """Rows satisfying either (or needed by both statements): NONE is neutral, ALL wins."""
    if left.status is KeyStatus.FOUND and right.status is KeyStatus.FOUND:
        return KeyPlan(KeyStatus.FOUND, left.sources + right.sources)
    return left if _OR_RANK[left.status] >= _OR_RANK[right.status] else right


_FIXED = {KeyStatus.NONE: NO_KEYS, KeyStatus.ALL: ALL_SHARDS, KeyStatus.UNKNOWN: UNKNOWN_KEYS}
_FOUND = KeyStatus.FOUND


def resolve(plan: KeyPlan, literals: list[str]) -> ShardKeys:
    """The ShardKeys of a plan, with the values of `literals`. Never raises.

    This runs on every cache hit whose keys come from literals, so the usual case (a plain
    integer literal) takes the short way.
    """
    if plan.status is not _FOUND:
        return _FIXED[plan.status]
    keys: list[KeyValue | ParamRef] = []
    for source in plan.sources:
        if isinstance(source, ParamRef):
            keys.append(source)
            continue
        slot, negate, cast = source
        if slot >= len(literals):
            return UNKNOWN_KEYS  # a literal sqlglot made up: cannot happen, but never guess
        raw = literals[slot]
        if raw.isdigit() and not negate and cast is None:
            keys.append(int(raw))
            continue
        value = literal_value(raw)
        if negate:
            value = negate_value(value)
        if cast is not None:
            value = cast_value(value, cast)
        keys.append(public_value(value))
    return ShardKeys(_FOUND, tuple(keys))

"""The analysis of one query shape: what the Parser caches.

A shape is cut into statements; each is classified by its keywords (utility statements) or
by sqlglot (queries and DML); the function-call rules apply to all; the statements are then
folded into one Classification. When the shard keys come from literals, the analysis keeps
a key plan and binds it to the literals of each query (`ShapeAnalysis.bind`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce

from parser.classification import (
    NO_KEYS,
    UNKNOWN_KEYS,
    Classification,
    StatementKind,
    Traits,
    TransactionModes,
    unknown_write,
)
from parser.dml import DmlAnalyser
from parser.functions import FunctionRules
from parser.keys import NO_PLAN, KeyPlan, either, resolve
from parser.settings import ParserSettings
from parser.shard_keys import KeyExtractor
from parser.statements import (
    SQLGLOT_KEYWORDS,
    StatementInfo,
    classify_utility,
    inner_query,
    split_statements,
    words,
)

EMPTY_QUERY = Classification(Traits(True, (StatementKind.EMPTY,), reason="empty query"))


@dataclass(frozen=True, slots=True)
class ShapeAnalysis:
    """A cached analysis: the classification, and the key plan when keys vary by literal."""

    classification: Classification
    plan: KeyPlan | None = None

    def bind(self, literals: list[str]) -> Classification:
        """The classification of one query of this shape, keys read from its literals."""
        if self.plan is None:
            return self.classification
        return Classification(self.classification.traits, resolve(self.plan, literals))


class ShapeAnalyser:
    """Analyses shapes for one pool's settings (uncached; the Parser caches)."""

    def __init__(self, settings: ParserSettings) -> None:
        self._keyed = bool(settings.sharding_keys)
        self._functions = FunctionRules.build(settings.write_functions)
        self._extractor = KeyExtractor(settings.sharding_keys) if self._keyed else None
        self._dml = DmlAnalyser(self._extractor)

    def analyse(self, shape: str) -> ShapeAnalysis:
        """Analyse a shape. Never raises: whatever goes wrong is an unknown write."""
        try:
            statements = split_statements(shape)
            if not statements:
                return ShapeAnalysis(EMPTY_QUERY)
            return self._fold([self._statement(statement) for statement in statements])
        except Exception as error:  # a bug here must not take the session down
            reason = f"analysis failed: {type(error).__name__}"
            return ShapeAnalysis(unknown_write(reason, UNKNOWN_KEYS if self._keyed else NO_KEYS))

    def _statement(self, statement: str) -> StatementInfo:
        ws = words(statement)
        if ws[0] in SQLGLOT_KEYWORDS:
            info = self._dml.analyse(statement, ws[0])
        else:
            info = self._with_inner_query(statement, classify_utility(statement, ws))
        return self._apply_functions(statement, info)

    def _with_inner_query(self, statement: str, info: StatementInfo) -> StatementInfo:
        """EXPLAIN, DECLARE and COPY take the tables and keys of the query they hold."""
        inner = inner_query(info.kind, statement)
        first = words(inner)[:1] if inner else []
        if inner and first and first[0] in SQLGLOT_KEYWORDS:
            query = self._dml.analyse(inner, first[0])
            return dataclasses.replace(
                info, tables=query.tables, keys=query.keys, error=query.error
            )
        if info.kind is StatementKind.COPY and self._extractor is not None:
            return dataclasses.replace(info, keys=self._extractor.plan_for_tables(info.tables))
        return info

    def _apply_functions(self, statement: str, info: StatementInfo) -> StatementInfo:
        changes: dict[str, object] = {}
        if not info.is_write:
            name = self._functions.write_call(statement)
            if name is not None:
                changes.update(is_write=True, reason=f"write function {name}()")
        if self._functions.pins.search(statement):
            changes.update(pins_session=True)
        if self._functions.session.search(statement):
            changes.update(sets_session_state=True)
        return dataclasses.replace(info, **changes) if changes else info  # type: ignore[arg-type]

    def _fold(self, infos: list[StatementInfo]) -> ShapeAnalysis:
        plan = reduce(either, (info.keys for info in infos), NO_PLAN) if self._keyed else NO_PLAN
        writes = [info for info in infos if info.is_write]
        traits = Traits(
            is_write=bool(writes),
            kinds=tuple(info.kind for info in infos),
            tables=tuple(dict.fromkeys(t for info in infos for t in info.tables)),
            reason=writes[0].reason if writes else "read",
            is_transaction_start=any(info.is_transaction_start for info in infos),
            is_transaction_end=any(info.is_transaction_end for info in infos),
            transaction_modes=_merge_modes(info.transaction_modes for info in infos),
            pins_session=any(info.pins_session for info in infos),
            sets_session_state=any(info.sets_session_state or info.pins_session for info in infos),
            copy_direction=next((i.copy_direction for i in infos if i.copy_direction), None),
            error=next((info.error for info in infos if info.error), None),
        )
        if plan.needs_literals:
            return ShapeAnalysis(Classification(traits), plan)
        return ShapeAnalysis(Classification(traits, resolve(plan, [])))


def _merge_modes(all_modes: Iterable[TransactionModes | None]) -> TransactionModes | None:
    """BEGIN; SET TRANSACTION READ ONLY: later modes override earlier ones, field by field."""
    merged: TransactionModes | None = None
    for modes in all_modes:
        if modes is None:
            continue
        if merged is None:
            merged = modes
            continue
        merged = TransactionModes(
            modes.read_only if modes.read_only is not None else merged.read_only,
            modes.isolation_level or merged.isolation_level,
            modes.deferrable if modes.deferrable is not None else merged.deferrable,
        )
    return merged

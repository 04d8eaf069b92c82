"""Shard keys of one statement's sqlglot tree, as a KeyPlan over the shape's placeholders.

A query is a tree of blocks (SELECT, INSERT, UPDATE, DELETE; set operations join blocks).
A block's own plan comes from its own tables and conditions (WHERE and INNER JOIN ... ON):
equality with the key column on either side, IN lists, `= ANY(ARRAY[...])`, parentheses,
negative numbers, casts, `$n` parameters, aliases resolved. A block whose own plan is FOUND
anchors its subqueries (they run on the same shard, as pgcat routes them); a block with no
sharded table of its own takes its subqueries' plan; set operations need every branch.
A data-modifying CTE is never anchored by its siblings: its rows must be reached wherever
they are.

sqlglot.optimizer.scope is not used: it misses the target table of UPDATE and DELETE and
takes a data-modifying CTE for a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

from sqlglot import exp

from parser.classification import KeyStatus, ParamRef
from parser.keys import (
    ALL_PLAN,
    NO_PLAN,
    UNKNOWN_PLAN,
    KeyPlan,
    SlotRef,
    Source,
    both,
    either,
    found,
)
from parser.settings import ShardingKey
from parser.values import cast_name

SHARDING_KEY_UPDATE = "sharding key cannot be updated"

_BLOCKS = (exp.Select, exp.SetOperation, exp.Insert, exp.Update, exp.Delete, exp.Merge)
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge)


@dataclass(frozen=True, slots=True)
class _Scope:
    """The base tables of one block: qualifier (alias or name) -> table name or None."""

    sources: dict[str, str | None]
    tables: frozenset[str]


class KeyExtractor:
    """Extracts the KeyPlan (and a sharding key update error) of statements for given keys."""

    def __init__(self, keys: tuple[ShardingKey, ...]) -> None:
        self._keys = keys

    def extract(self, tree: exp.Expr) -> tuple[KeyPlan, str | None]:
        """The plan of a whole statement, and an error if it updates a sharding key."""
        ctes = frozenset(cte.alias.lower() for cte in tree.find_all(exp.CTE))
        walker = _Walker(self._keys, ctes)
        plan = walker.query(tree)
        for write in tree.find_all(*_WRITES):
            if write is not tree:
                plan = either(plan, walker.query(write))
        if plan.status is KeyStatus.NONE and walker.touches_sharded_table(tree):
            plan = ALL_PLAN  # a sharded table no block claimed (e.g. in a nested join)
        if len(plan.sources) > 1:
            # A data-modifying CTE is reached twice (nested, and as a write of its own).
            plan = KeyPlan(plan.status, tuple(dict.fromkeys(plan.sources)))
        return plan, walker.error

    def plan_for_tables(self, names: tuple[str, ...]) -> KeyPlan:
        """ALL when one of these tables (as COPY names them) is sharded, else NONE."""
        tables = {name.rsplit(".", 1)[-1].lower() for name in names}
        sharded = any(key.table is None or key.table in tables for key in self._keys)
        return ALL_PLAN if tables and sharded else NO_PLAN


class _Walker:
    """One statement's walk: the keys, its CTE names, and the error found on the way."""

    def __init__(self, keys: tuple[ShardingKey, ...], ctes: frozenset[str]) -> None:
        self.keys = keys
        self.ctes = ctes
        self.error: str | None = None

    # -- blocks -------------------------------------------------------------------------

    def query(self, node: exp.Expr) -> KeyPlan:
        if isinstance(node, exp.Subquery):
            return self.query(node.this)
        if isinstance(node, exp.SetOperation):
            return either(self.query(node.left), self.query(node.right))
        own = self._own(node) if isinstance(node, _BLOCKS) else NO_PLAN
        if own.status in (KeyStatus.ALL, KeyStatus.UNKNOWN):
            return own
        nested = NO_PLAN
        for child in _child_blocks(node):
            nested = both(nested, self.query(child))  # any FOUND anchors the others
        if own.status is KeyStatus.FOUND:
            extra = nested.sources if nested.status is KeyStatus.FOUND else ()
            return KeyPlan(KeyStatus.FOUND, own.sources + extra)
        return nested

    def _own(self, node: exp.Expr) -> KeyPlan:
        if isinstance(node, exp.Insert):
            return self._insert(node)
        scope = self._scope(node)
        if not self._is_sharded(scope):
            return NO_PLAN
        if isinstance(node, exp.Merge):
            return ALL_PLAN
        if isinstance(node, exp.Update):
            self._check_assignments(node.expressions, scope)
        plan = ALL_PLAN
        for condition in _conditions(node):
            plan = both(plan, self._condition(condition, scope))
        return plan

    def _insert(self, node: exp.Insert) -> KeyPlan:
        target = node.this
        columns = target.expressions if isinstance(target, exp.Schema) else []
        table = target.this if isinstance(target, exp.Schema) else target
        scope = self._scope_of([table])
        if not self._is_sharded(scope):
            return NO_PLAN
        conflict = node.args.get("conflict")
        if isinstance(conflict, exp.OnConflict):
            self._check_assignments(conflict.expressions, scope)
        if not columns:
            return UNKNOWN_PLAN  # the column order is the table's: unknown here
        names = [column.name.lower() for column in columns]
        positions = [
            names.index(key.column)
            for key in self.keys
            if key.column in names and (key.table is None or key.table in scope.tables)
        ]
        if not positions:
            return UNKNOWN_PLAN if self._keyed_by_name(scope) else NO_PLAN
        rows = node.expression
        if not isinstance(rows, exp.Values):
            return UNKNOWN_PLAN  # INSERT ... SELECT: the keys come from the query
        sources: list[Source] = []
        for row in rows.expressions:
            values = row.expressions if isinstance(row, exp.Tuple) else [row]
            for position in positions:
                source = _value_source(values[position]) if position < len(values) else None
                if source is None:
                    return UNKNOWN_PLAN
                sources.append(source)
        return found(*sources)

    # -- scopes -------------------------------------------------------------------------

    def _scope(self, node: exp.Expr) -> _Scope:
        tables: list[exp.Expr] = []
        if isinstance(node, exp.Update | exp.Delete | exp.Merge):
            tables.append(node.this)
        from_ = node.args.get("from_") or node.args.get("from")
        if isinstance(from_, exp.From):
            tables.append(from_.this)
        tables += [join.this for join in node.args.get("joins") or ()]
        tables += list(node.args.get("using") or ()) if isinstance(node, exp.Delete) else []
        return self._scope_of(tables)

    def _scope_of(self, sources: list[exp.Expr]) -> _Scope:
        named: dict[str, str | None] = {}
        tables: set[str] = set()
        for source in sources:
            alias = source.alias.lower() if source.alias else ""
            if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
                name = source.name.lower()
                if name in self.ctes and not source.db:
                    named[alias or name] = None
                    continue
                named[alias or name] = name
                named.setdefault(name, name)
                tables.add(name)
            elif alias:
                named[alias] = None  # a derived table or table function: not a base table
        return _Scope(named, frozenset(tables))

    def _is_sharded(self, scope: _Scope) -> bool:
        """True when a key applies to one of the scope's base tables."""
        tables = scope.tables
        return bool(tables) and any(key.table is None or key.table in tables for key in self.keys)

    def _keyed_by_name(self, scope: _Scope) -> bool:
        """True when a `table.column` key names one of the scope's tables."""
        return any(key.table is not None and key.table in scope.tables for key in self.keys)

    def touches_sharded_table(self, tree: exp.Expr) -> bool:
        """True when any base table anywhere in the statement is sharded."""
        tables: list[exp.Expr] = list(tree.find_all(exp.Table))
        return self._is_sharded(self._scope_of(tables))

    # -- conditions ---------------------------------------------------------------------

    def _condition(self, node: exp.Expr, scope: _Scope) -> KeyPlan:
        if isinstance(node, exp.Paren):
            return self._condition(node.this, scope)
        if isinstance(node, exp.And | exp.Or):
            # flatten() walks a chain of one connector without recursion: a WHERE of
            # thousands of ANDs must not hit Python's recursion limit.
            combine = both if isinstance(node, exp.And) else either
            terms = (self._condition(term, scope) for term in node.flatten())
            return reduce(combine, terms)
        if isinstance(node, exp.EQ | exp.NullSafeEQ):
            return self._equality(node.left, node.right, scope)
        if isinstance(node, exp.In):
            return self._in(node, scope)
        return ALL_PLAN

    def _equality(self, left: exp.Expr, right: exp.Expr, scope: _Scope) -> KeyPlan:
        left_is_key, right_is_key = self._is_key(left, scope), self._is_key(right, scope)
        if left_is_key == right_is_key:
            return ALL_PLAN  # no key, or key = key (a join): no constraint of its own
        value = _unparen(right if left_is_key else left)
        if isinstance(value, exp.Any):
            return _any_plan(_unparen(value.this))
        source = _value_source(value)
        if source is not None:
            return found(source)
        if isinstance(value, exp.Column):
            return ALL_PLAN  # key = another column: a join condition
        return UNKNOWN_PLAN  # key = f(x), key = (SELECT ...): one shard, unknown which

    def _in(self, node: exp.In, scope: _Scope) -> KeyPlan:
        if not self._is_key(node.this, scope):
            return ALL_PLAN
        if node.args.get("query") is not None or not node.expressions:
            return UNKNOWN_PLAN
        sources = [_value_source(value) for value in node.expressions]
        if any(source is None for source in sources):
            return UNKNOWN_PLAN
        return found(*(source for source in sources if source is not None))

    def _is_key(self, node: exp.Expr, scope: _Scope) -> bool:
        node = _unparen(node)
        if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
            return False
        name = node.name.lower()
        qualifier = node.table.lower() if node.table else None
        for key in self.keys:
            if key.column != name:
                continue
            if qualifier is None:
                # PostgreSQL resolves an unqualified column to the one table of the block
                # that has it (or fails): if the key table is here, it is the key.
                if scope.tables and (key.table is None or key.table in scope.tables):
                    return True
            elif qualifier in scope.sources:
                table = scope.sources[qualifier]
                if table is not None and (key.table is None or key.table == table):
                    return True
        return False

    def _check_assignments(self, assignments: list[exp.Expr], scope: _Scope) -> None:
        """UPDATE ... SET key = ...: moving a row between shards is not supported."""
        for assignment in assignments:
            column = assignment.this if isinstance(assignment, exp.EQ) else None
            if not isinstance(column, exp.Column):
                continue
            name = column.name.lower()
            for key in self.keys:
                if key.column == name and (key.table is None or key.table in scope.tables):
                    self.error = SHARDING_KEY_UPDATE


def _child_blocks(node: exp.Expr) -> list[exp.Expr]:
    """The blocks directly nested in `node` (subqueries, CTEs, derived tables)."""
    children: list[exp.Expr] = []
    for child in node.walk(prune=lambda n: n is not node and isinstance(n, _BLOCKS)):
        if child is not node and isinstance(child, _BLOCKS):
            children.append(child)
    return children


def _conditions(node: exp.Expr) -> list[exp.Expr]:
    """WHERE, and the ON of inner joins (an outer join's ON does not filter the rows)."""
    conditions = []
    where = node.args.get("where")
    if isinstance(where, exp.Where):
        conditions.append(where.this)
    for join in node.args.get("joins") or ():
        on = join.args.get("on")
        if on is not None and not join.side:
            conditions.append(on)
    return conditions


def _unparen(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _value_source(node: exp.Expr) -> Source | None:
    """A literal placeholder or a parameter, maybe negated or cast; None for anything else."""
    node = _unparen(node)
    if isinstance(node, exp.Literal):
        text = node.this
        return SlotRef(int(text)) if isinstance(text, str) and text.isdigit() else None
    if isinstance(node, exp.Parameter):
        position = node.this.this if isinstance(node.this, exp.Literal) else None
        if isinstance(position, str) and position.isdigit():
            return ParamRef(int(position))
        return None
    if isinstance(node, exp.Neg):
        inner = _value_source(node.this)
        if isinstance(inner, SlotRef):
            return inner._replace(negate=not inner.negate)
        return None
    if isinstance(node, exp.Cast) and isinstance(node.to, exp.DataType):
        inner = _value_source(node.this)
        cast = _type_name(node.to)
        if isinstance(inner, SlotRef):
            return SlotRef(inner.slot, inner.negate, cast)
        if isinstance(inner, ParamRef):
            return ParamRef(inner.position, cast, inner.array)
    return None


def _type_name(data_type: exp.DataType) -> str:
    """The cast name of a type; of its element type for an array (`$1::bigint[]`)."""
    if data_type.this == exp.DataType.Type.ARRAY and data_type.expressions:
        element = data_type.expressions[0]
        if isinstance(element, exp.DataType):
            data_type = element
    return cast_name(getattr(data_type.this, "name", str(data_type.this)))


def _any_plan(node: exp.Expr) -> KeyPlan:
    """`key = ANY(ARRAY[...])` or `key = ANY($n)`."""
    if isinstance(node, exp.Array):
        sources = [_value_source(value) for value in node.expressions]
        if sources and all(source is not None for source in sources):
            return found(*(source for source in sources if source is not None))
        return UNKNOWN_PLAN
    source = _value_source(node)
    if isinstance(source, ParamRef):
        return found(ParamRef(source.position, source.cast, array=True))
    return UNKNOWN_PLAN

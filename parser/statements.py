"""Statements of a shape, and the classification of utility statements by their keywords.

sqlglot silently misparses LISTEN, DISCARD, SAVEPOINT and DEALLOCATE as column aliases and
falls back to an opaque Command for many others, so every statement that is not a query or
DML is classified here, from its leading keywords, before sqlglot sees it. The grammar
followed is PostgreSQL's (src/backend/parser/gram.y); anything not recognised is UNKNOWN,
which is a write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from parser.classification import (
    CopyDirection,
    IsolationLevel,
    StatementKind,
    TransactionModes,
)
from parser.keys import ALL_PLAN, NO_PLAN, UNKNOWN_PLAN, KeyPlan

_WORD = re.compile(r"""[A-Za-z_\u0080-\U0010ffff][\w$\u0080-\U0010ffff]*|"(?:[^"]|"")*"|\S""")
_QUOTED_IDENT = re.compile(r'"(?:[^"]|"")*"')

# First keywords of the statements sqlglot analyses (queries and DML).
SQLGLOT_KEYWORDS = frozenset(
    {"SELECT", "VALUES", "TABLE", "WITH", "(", "INSERT", "UPDATE", "DELETE", "MERGE"}
)
_DDL = frozenset(
    {
        *("CREATE", "ALTER", "DROP", "TRUNCATE", "COMMENT", "GRANT", "REVOKE", "SECURITY"),
        *("VACUUM", "ANALYZE", "ANALYSE", "CLUSTER", "REINDEX", "REFRESH", "CHECKPOINT"),
        *("IMPORT", "REASSIGN", "LOAD"),
    }
)
_SIMPLE = {
    "SAVEPOINT": StatementKind.SAVEPOINT,
    "RELEASE": StatementKind.RELEASE_SAVEPOINT,
    "NOTIFY": StatementKind.NOTIFY,
    "EXECUTE": StatementKind.EXECUTE,
    "FETCH": StatementKind.FETCH,
    "MOVE": StatementKind.MOVE,
    "CLOSE": StatementKind.CLOSE,
    "EXPLAIN": StatementKind.EXPLAIN,
    "CALL": StatementKind.CALL,
    "DO": StatementKind.DO,
    "LOCK": StatementKind.LOCK,
}
_SESSION = {
    "RESET": StatementKind.RESET,
    "DISCARD": StatementKind.DISCARD,
    "UNLISTEN": StatementKind.UNLISTEN,
    "DEALLOCATE": StatementKind.DEALLOCATE,
}
_ISOLATION_LEVELS = {level.value: level for level in IsolationLevel}

# SHOW name | SHOW ALL | SHOW TIME ZONE | ...: the only SHOW forms that read a setting.
_SHOW_SETTING = re.compile(
    r"""SHOW\s+(?:TIME\s+ZONE|TRANSACTION\s+ISOLATION\s+LEVEL|SESSION\s+AUTHORIZATION
    |(?:[A-Za-z_][\w$]*|"(?:[^"]|"")*")(?:\s*\.\s*(?:[A-Za-z_][\w$]*|"(?:[^"]|"")*"))*)\s*""",
    re.IGNORECASE | re.VERBOSE,
)


# Utility statements that reach rows: DDL and LOCK on every shard; code we cannot see
# (CALL, DO, EXECUTE of a prepared statement) or do not know, on shards unknown.
_UTILITY_KEYS = {
    StatementKind.DDL: ALL_PLAN,
    StatementKind.LOCK: ALL_PLAN,
    StatementKind.CALL: UNKNOWN_PLAN,
    StatementKind.DO: UNKNOWN_PLAN,
    StatementKind.EXECUTE: UNKNOWN_PLAN,
    StatementKind.UNKNOWN: UNKNOWN_PLAN,
}

# The query inside EXPLAIN, DECLARE ... CURSOR ... FOR and COPY (...) TO (gram.y).
_INNER_QUERY = {
    StatementKind.EXPLAIN: re.compile(
        r"EXPLAIN\s+(?:\([^)]*\)\s*)?(?:(?:ANALY[SZ]E|VERBOSE)\s+)*(.+)", re.I | re.S
    ),
    StatementKind.DECLARE: re.compile(r"DECLARE\b.*?\bCURSOR\b.*?\bFOR\s+(.+)", re.I | re.S),
    StatementKind.COPY: re.compile(r"COPY\s*\((.+)\)\s*TO\b", re.I | re.S),
}


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """What one statement contributes to a Classification."""

    kind: StatementKind
    is_write: bool = True
    reason: str = ""
    tables: tuple[str, ...] = ()
    keys: KeyPlan = NO_PLAN
    is_transaction_start: bool = False
    is_transaction_end: bool = False
    transaction_modes: TransactionModes | None = None
    pins_session: bool = False
    sets_session_state: bool = False
    copy_direction: CopyDirection | None = None
    error: str | None = None


def split_statements(shape: str) -> list[str]:
    """The non-empty statements of a shape (literals and comments are already out of it)."""
    if '"' not in shape:
        pieces = shape.split(";")
    else:
        # Keep semicolons inside quoted identifiers: mask them, split, restore.
        masked = _QUOTED_IDENT.sub(lambda m: m.group().replace(";", "\0"), shape)
        pieces = [piece.replace("\0", ";") for piece in masked.split(";")]
    return [piece.strip() for piece in pieces if piece.strip()]


def words(statement: str) -> list[str]:
    """The words and symbols of a statement, unquoted words uppercased."""
    return [w if w[0] == '"' else w.upper() for w in _WORD.findall(statement)]


def normalise_identifier(word: str) -> str:
    """An identifier as PostgreSQL resolves it: quoted ones as written, others lowercased."""
    if word.startswith('"'):
        return word[1:-1].replace('""', '"')
    return word.lower()


def classify_utility(statement: str, ws: list[str]) -> StatementInfo:
    """Classify a statement whose first word is not in SQLGLOT_KEYWORDS."""
    info = _classify_utility(statement, ws)
    keys = _UTILITY_KEYS.get(info.kind)
    return info if keys is None else replace(info, keys=keys)


def _classify_utility(statement: str, ws: list[str]) -> StatementInfo:
    first = ws[0]
    handler = _HANDLERS.get(first)
    if handler is not None:
        return handler(statement, ws)
    if first in _SIMPLE:
        return StatementInfo(_SIMPLE[first], reason=first)
    if first in _SESSION:
        return StatementInfo(_SESSION[first], reason=first, sets_session_state=True)
    if first in _DDL:
        return StatementInfo(StatementKind.DDL, reason=first)
    return StatementInfo(StatementKind.UNKNOWN, reason=f"unknown statement {first[:40]}")


def inner_query(kind: StatementKind, statement: str) -> str | None:
    """The query inside EXPLAIN, DECLARE ... FOR or COPY (...) TO, if there is one."""
    pattern = _INNER_QUERY.get(kind)
    match = pattern.match(statement) if pattern is not None else None
    return match.group(1).strip() if match else None


def transaction_modes(ws: list[str]) -> TransactionModes | None:
    """Parse transaction_mode_list (gram.y): READ ONLY/WRITE, ISOLATION LEVEL, DEFERRABLE."""
    read_only: bool | None = None
    level: IsolationLevel | None = None
    deferrable: bool | None = None
    i = 0
    while i < len(ws):
        pair = " ".join(ws[i : i + 2])
        if pair in ("READ ONLY", "READ WRITE"):
            read_only, i = pair == "READ ONLY", i + 2
        elif pair == "ISOLATION LEVEL":
            for size in (2, 1):
                name = " ".join(ws[i + 2 : i + 2 + size])
                if name in _ISOLATION_LEVELS:
                    level, i = _ISOLATION_LEVELS[name], i + 2 + size
                    break
            else:
                break
        elif pair == "NOT DEFERRABLE":
            deferrable, i = False, i + 2
        elif ws[i] == "DEFERRABLE":
            deferrable, i = True, i + 1
        elif ws[i] == ",":
            i += 1
        else:
            break
    if read_only is None and level is None and deferrable is None:
        return None
    return TransactionModes(read_only, level, deferrable)


def _begin(statement: str, ws: list[str]) -> StatementInfo:
    if ws[0] == "START" and ws[1:2] != ["TRANSACTION"]:
        return StatementInfo(StatementKind.UNKNOWN, reason="unknown statement START")
    rest = ws[1:]
    if rest[:1] in (["WORK"], ["TRANSACTION"]):
        rest = rest[1:]
    return StatementInfo(
        StatementKind.BEGIN,
        reason="BEGIN",
        is_transaction_start=True,
        transaction_modes=transaction_modes(rest),
    )


def _commit(statement: str, ws: list[str]) -> StatementInfo:
    if ws[1:2] == ["PREPARED"]:
        return StatementInfo(StatementKind.COMMIT_PREPARED, reason="COMMIT PREPARED")
    return StatementInfo(StatementKind.COMMIT, reason="COMMIT", is_transaction_end=True)


def _rollback(statement: str, ws: list[str]) -> StatementInfo:
    if ws[1:2] == ["PREPARED"]:
        return StatementInfo(StatementKind.ROLLBACK_PREPARED, reason="ROLLBACK PREPARED")
    if "TO" in ws[1:3]:
        return StatementInfo(StatementKind.ROLLBACK_TO_SAVEPOINT, reason="ROLLBACK TO")
    return StatementInfo(StatementKind.ROLLBACK, reason="ROLLBACK", is_transaction_end=True)


def _prepare(statement: str, ws: list[str]) -> StatementInfo:
    if ws[1:2] == ["TRANSACTION"]:
        # PREPARE TRANSACTION ends the transaction: the session is idle afterwards.
        return StatementInfo(
            StatementKind.PREPARE_TRANSACTION,
            reason="PREPARE TRANSACTION",
            is_transaction_end=True,
        )
    return StatementInfo(StatementKind.PREPARE, reason="PREPARE", sets_session_state=True)


def _set(statement: str, ws: list[str]) -> StatementInfo:
    second = ws[1] if len(ws) > 1 else ""
    if second == "TRANSACTION":
        return StatementInfo(
            StatementKind.SET_TRANSACTION,
            reason="SET TRANSACTION",
            transaction_modes=transaction_modes(ws[2:]),
        )
    if second in ("LOCAL", "CONSTRAINTS"):
        return StatementInfo(StatementKind.SET_LOCAL, reason=f"SET {second}")
    return StatementInfo(StatementKind.SET, reason="SET", sets_session_state=True)


def _show(statement: str, ws: list[str]) -> StatementInfo:
    if _SHOW_SETTING.fullmatch(statement):
        return StatementInfo(StatementKind.SHOW, is_write=False, reason="read")
    return StatementInfo(StatementKind.UNKNOWN, reason="SHOW of something not a setting")


def _listen(statement: str, ws: list[str]) -> StatementInfo:
    return StatementInfo(
        StatementKind.LISTEN, reason="LISTEN", pins_session=True, sets_session_state=True
    )


def _declare(statement: str, ws: list[str]) -> StatementInfo:
    head = ws[: ws.index("FOR")] if "FOR" in ws else ws
    holds = any(head[i : i + 2] == ["WITH", "HOLD"] for i in range(len(head)))
    return StatementInfo(
        StatementKind.DECLARE,
        reason="DECLARE",
        pins_session=holds,
        sets_session_state=holds,
    )


def _create(statement: str, ws: list[str]) -> StatementInfo:
    rest = ws[1:]
    if rest[:2] == ["OR", "REPLACE"]:
        rest = rest[2:]
    if rest[:1] in (["GLOBAL"], ["LOCAL"]):
        rest = rest[1:]
    if rest[:1] in (["TEMP"], ["TEMPORARY"]):
        return StatementInfo(
            StatementKind.CREATE_TEMP,
            reason="CREATE TEMP",
            pins_session=True,
            sets_session_state=True,
        )
    return StatementInfo(StatementKind.DDL, reason="CREATE")


def _copy(statement: str, ws: list[str]) -> StatementInfo:
    """COPY: the first FROM or TO outside parentheses gives the direction."""
    depth = 0
    direction: CopyDirection | None = None
    for word in ws[1:]:
        if word == "(":
            depth += 1
        elif word == ")":
            depth -= 1
        elif depth == 0 and word in ("FROM", "TO"):
            direction = CopyDirection(word)
            break
    start = 2 if ws[1:2] == ["BINARY"] else 1  # COPY BINARY t: the pre-7.3 syntax
    tables: tuple[str, ...] = ()
    if ws[start : start + 1] not in ([], ["("]):
        name = [normalise_identifier(ws[start])]
        while ws[start + 1 : start + 2] == ["."] and len(ws) > start + 2:
            name.append(normalise_identifier(ws[start + 2]))
            start += 2
        tables = (".".join(name),)
    return StatementInfo(StatementKind.COPY, reason="COPY", copy_direction=direction, tables=tables)


_HANDLERS = {
    "BEGIN": _begin,
    "START": _begin,
    "COMMIT": _commit,
    "END": _commit,
    "ROLLBACK": _rollback,
    "ABORT": _rollback,
    "PREPARE": _prepare,
    "SET": _set,
    "SHOW": _show,
    "LISTEN": _listen,
    "DECLARE": _declare,
    "CREATE": _create,
    "COPY": _copy,
}

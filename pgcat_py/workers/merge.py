"""Adding up what every worker sees: the admin console's SHOW views and the exporter's
metrics, so that the totals do not depend on which worker a connection landed on.

A view's rows are grouped by their text columns; numbers are summed (connection counts,
pool sizes, which are shares, and counters), except the ones that are a maximum over the
workers (longest wait, paused, banned, average times). CLIENTS and SERVERS are lists:
concatenated. CONFIG, VERSION and USERS are the same in every worker: one copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ..admin.result import TEXT_OID

CONCATENATED = frozenset({"CLIENTS", "SERVERS"})
ONE_COPY = frozenset({"CONFIG", "VERSION", "USERS", "BANS"})
_MAX_WORDS = ("maxwait", "paused", "disabled", "is_banned", "ban_", "avg_xact_time",
              "avg_query_time", "avg_wait_time", "_created")


def _is_max(name: str) -> bool:
    return any(word in name for word in _MAX_WORDS)


def merge_rows(view: str, columns: Sequence[tuple[str, int]],
               row_sets: Iterable[list[list[Any]]]) -> list[list[Any]]:
    """One view's rows from every worker, as one worker would show them."""
    sets = list(row_sets)
    if view in CONCATENATED:
        return [row for rows in sets for row in rows]
    keys = [i for i, (_, oid) in enumerate(columns) if oid == TEXT_OID]
    if view in ONE_COPY:
        seen: dict[tuple[Any, ...], list[Any]] = {}
        for rows in sets:
            for row in rows:
                seen.setdefault(tuple(row[i] for i in keys), row)
        return list(seen.values())
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for rows in sets:
        for row in rows:
            key = tuple(row[i] for i in keys)
            into = merged.get(key)
            if into is None:
                merged[key] = list(row)
                continue
            for i, (name, oid) in enumerate(columns):
                if oid != TEXT_OID and row[i] is not None:
                    into[i] = max(into[i], row[i]) if _is_max(name) else into[i] + row[i]
    return list(merged.values())


def merge_metrics(texts: Iterable[str]) -> str:
    """Prometheus text expositions of every worker, added up sample by sample."""
    families: dict[str, tuple[str, str]] = {}  # name -> (help, type)
    samples: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            families.setdefault(family.name, (family.documentation, family.type))
            into = samples.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                old = into.get(key)
                if old is None:
                    into[key] = sample.value
                elif _is_max(sample.name):
                    into[key] = max(old, sample.value)
                else:
                    into[key] = old + sample.value
    lines: list[str] = []
    for name, (doc, kind) in families.items():
        # The parser names a counter without its _total and an untyped family "unknown";
        # the 0.0.4 text format wants them as prometheus-client writes them.
        header = f"{name}_total" if kind == "counter" else name
        kind = "untyped" if kind == "unknown" else kind
        lines.append(f"# HELP {header} {_escape(doc)}")
        lines.append(f"# TYPE {header} {kind}")
        for (sample_name, labels), value in samples[name].items():
            label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
            lines.append(f"{sample_name}{{{label_text}}} {_number(value)}" if labels
                         else f"{sample_name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return _escape(text).replace('"', '\\"')

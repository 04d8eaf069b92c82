"""What a worker answers on the control channel (peers.py): another worker's requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest

if TYPE_CHECKING:
    from ..app import App


async def answer_peer(app: App, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "cancel":
        app.cancel(int(request["pid"]), int(request["key"]))
    elif op == "ban":
        _ban(app, request)
    elif op == "view":
        from ..admin.console import SHOW_VIEWS

        view = SHOW_VIEWS.get(str(request["name"]))
        if view is not None:
            columns, rows = view(app)
            return {"columns": columns, "rows": rows}
    elif op == "metrics":
        return {"text": local_metrics(app)}
    elif op == "admin":
        from ..admin.console import run_local

        return {"error": await run_local(app, str(request["sql"]))}
    return {}


def _ban(app: App, request: dict[str, Any]) -> None:
    entry = app.pools.get((str(request["pool"]), str(request["user"])))
    if entry is None:
        return  # a pool this worker no longer has (a reload in between)
    for pool in entry.cluster.pools:
        if pool.target.name == request["name"]:
            pool.ban(str(request["reason"]), seconds=float(request["seconds"]), announce=False)


def local_metrics(app: App) -> str:
    """This worker's own exposition (the exporter's worker adds up everyone's)."""
    from ..metrics import AppCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(AppCollector(app))
    return generate_latest(registry).decode()

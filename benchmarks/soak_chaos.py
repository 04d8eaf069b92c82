"""The soak's faults and reloads, on a schedule, in one thread.

- Every `replica_every_s` the replica is killed (`pg_ctl stop -m immediate`, a crash: no
  shutdown message to its clients) and started again `replica_down_s` later. From the kill
  until `trouble_grace_s` after the restart (the ban and the health checks need that long to
  let the replica serve again), connection errors count as expected (soak_errors.py).
- Every `reload_every_s` the config is reloaded, alternately by SIGHUP with a [general]
  change (pools keep their connections) and by the admin console's RELOAD with a change to
  the pool itself (the pool is rebuilt: its old servers close after their transaction).
  For `rebuild_grace_s` after a rebuild, server counts are kept apart (soak_watch.py).
Every event is logged with its time, for the CSV and the plot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChaosSettings:
    replica_every_s: float = 180.0
    replica_down_s: float = 20.0
    reload_every_s: float = 45.0
    trouble_grace_s: float = 20.0
    rebuild_grace_s: float = 5.0


@dataclass
class Actions:
    kill_replica: Callable[[], None]
    start_replica: Callable[[], None]
    # reload number n (from 1); with True, by admin RELOAD and a change that rebuilds the
    # pool, else by SIGHUP and a [general] change
    reload: Callable[[int, bool], None]


@dataclass
class Chaos:
    settings: ChaosSettings
    actions: Actions
    started: float  # time.monotonic() of the soak's start: event times are relative to it
    events: list[tuple[float, str]] = field(default_factory=list)
    failure: BaseException | None = None
    _trouble: tuple[float, float] | None = None  # (from, until), monotonic
    _rebuild_until: float = 0.0
    _replica_down: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Chaos:
        self._thread = threading.Thread(target=self._run, name="soak-chaos", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop scheduling; a replica that is down is started again first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        if self._replica_down:
            self._restart()

    def in_trouble(self, now: float) -> bool:
        trouble = self._trouble
        return trouble is not None and trouble[0] <= now <= trouble[1]

    def rebuilding(self, now: float) -> bool:
        return now <= self._rebuild_until

    def _log(self, what: str) -> None:
        self.events.append((time.monotonic() - self.started, what))

    def _run(self) -> None:
        s = self.settings
        next_kill = self.started + s.replica_every_s
        next_reload = self.started + s.reload_every_s
        reloads = 0
        try:
            while not self._stop.wait(0.2):
                now = time.monotonic()
                if now >= next_kill and not self._replica_down:
                    self._kill()
                if self._replica_down and now >= next_kill + s.replica_down_s:
                    self._restart()
                    next_kill += s.replica_every_s
                if now >= next_reload:
                    reloads += 1
                    self._reload(reloads)
                    next_reload += s.reload_every_s
        except BaseException as exc:  # reported by the soak, not lost with the thread
            self.failure = exc

    def _kill(self) -> None:
        # the window opens before the kill: clients may see it while pg_ctl still runs
        self._trouble = (time.monotonic(), float("inf"))
        self._replica_down = True
        self.actions.kill_replica()
        self._log("replica killed")

    def _restart(self) -> None:
        self.actions.start_replica()
        self._replica_down = False
        assert self._trouble is not None
        self._trouble = (self._trouble[0], time.monotonic() + self.settings.trouble_grace_s)
        self._log("replica restarted")

    def _reload(self, number: int) -> None:
        rebuild = number % 2 == 0
        if rebuild:  # before the reload: the watch may sample while it runs
            self._rebuild_until = time.monotonic() + 60.0
        self.actions.reload(number, rebuild)
        if rebuild:
            self._rebuild_until = time.monotonic() + self.settings.rebuild_grace_s
        self._log("RELOAD (pool rebuilt)" if rebuild else "SIGHUP ([general] only)")

"""The supervisor: starts the worker processes, passes signals on, replaces a dead one.

Each worker is `python -m pgcat_py CONFIG` with its place in the environment
(layout.ENV_WORKER): it binds the same port with SO_REUSEPORT, so the kernel spreads new
clients over them, and serves on its own. SIGHUP (reload), SIGINT (graceful) and SIGTERM
(at once) go to every worker. A worker that exits 0 was asked to (SHUTDOWN, a signal); the
supervisor exits once all have. One that dies otherwise is started again in its slot: its
server connections died with it (the kernel closes them; PostgreSQL rolls back what was
open), so nothing is leaked. A worker that cannot start (exit 78, a bad config or a taken
port) stops them all.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from ..config import EX_CONFIG
from .layout import ENV_RUNTIME, ENV_WORKER

log = logging.getLogger(__name__)
RESTART_DELAY = 0.5  # seconds before a dead worker's slot is started again
FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)


class Supervisor:
    def __init__(self, config_path: Path, count: int) -> None:
        self.config_path = config_path
        self.count = count
        self.runtime_dir = tempfile.mkdtemp(prefix="pgcat-py-")
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self, index: int) -> None:
        env = {**os.environ, ENV_WORKER: f"{index}/{self.count}", ENV_RUNTIME: self.runtime_dir}
        self.workers[index] = subprocess.Popen(
            [sys.executable, "-m", "pgcat_py", str(self.config_path)], env=env)

    def forward(self, signum: int, _frame: FrameType | None = None) -> None:
        if signum in (signal.SIGINT, signal.SIGTERM):
            self.stopping = True
        for process in self.workers.values():
            if process.poll() is None:
                process.send_signal(signum)

    def run(self) -> int:
        for signum in FORWARDED:
            signal.signal(signum, self.forward)
        try:
            for index in range(self.count):
                self.start(index)
            log.info("started %d workers: %s", self.count,
                     " ".join(str(p.pid) for p in self.workers.values()))
            return self._watch()
        finally:
            for process in self.workers.values():
                if process.poll() is None:
                    process.kill()
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def _watch(self) -> int:
        while self.workers:
            pid, status = os.wait()  # retried after a signal handler ran (PEP 475)
            index = next((i for i, p in self.workers.items() if p.pid == pid), None)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            self.workers[index].returncode = code
            del self.workers[index]
            if code == 0 or self.stopping:
                self.stopping = True  # one worker asked to stop (SHUTDOWN): all do
                self.forward(signal.SIGINT)
                continue
            if code == EX_CONFIG:
                log.error("worker %d could not start: stopping", index)
                self.forward(signal.SIGTERM)
                return EX_CONFIG
            log.error("worker %d (pid %d) died with %s: starting it again", index, pid,
                      f"signal {-code}" if code < 0 else f"exit code {code}")
            time.sleep(RESTART_DELAY)
            self.start(index)
        return 0


def run_supervisor(config_path: Path, count: int) -> int:
    return Supervisor(config_path, count).run()

"""The fuzzer's corpus is real client traffic, and can be made again.

Every scenario of tests/fuzz/capture.py runs through the recorder in front of a real proxy;
the recordings must frame as whole startup packets and messages, and the committed corpus
must hold the same sessions. `PGCAT_FUZZ_WRITE_CORPUS=1` writes the fresh recordings over
tests/fuzz/corpus (then commit them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgcat_py.localpg import Topology, free_port
from pgcat_py.protocol.startup import CANCEL_REQUEST_CODE
from tests.e2e.conftest import ProxyRunner

from .capture import CONNECTIONS, SCENARIOS, capture_all
from .conftest import CORPUS_DIR, fuzz_config, load_corpus
from .stream import MESSAGE, RAW, STARTUP, split_units

pytestmark = pytest.mark.timeout(120)
WRITE_ENV = "PGCAT_FUZZ_WRITE_CORPUS"


def expected_names() -> set[str]:
    names = set()
    for name in SCENARIOS:
        names.add(f"{name}.bin")
        names.update(f"{name}-{i}.bin" for i in range(1, CONNECTIONS.get(name, 1)))
    return names


def test_capture_records_whole_sessions(pg_topology: Topology, fuzz_table: None,
                                        proxy_runner: ProxyRunner, tmp_path: Path) -> None:
    proxy = proxy_runner(fuzz_config(pg_topology, free_port()))
    captured = capture_all(proxy.host, proxy.port, tmp_path / "corpus")
    assert set(captured) == expected_names()
    for name, data in captured.items():
        units = split_units(data)
        assert units and all(u.kind != RAW for u in units), name
        if name.endswith("-1.bin"):  # a CancelRequest (maybe after an SSLRequest)
            assert all(u.kind == STARTUP for u in units), name
            assert units[-1].type == CANCEL_REQUEST_CODE and len(units[-1].data) == 16, name
        else:  # a session that logged in and said goodbye
            assert units[-1].kind == MESSAGE and units[-1].type == ord("X"), name
    assert "Traceback" not in proxy.log_text(), proxy.log_tail()
    if os.environ.get(WRITE_ENV):
        for old in CORPUS_DIR.glob("*.bin"):
            old.unlink()
        for name, data in captured.items():
            (CORPUS_DIR / name).write_bytes(data)
    assert set(load_corpus()) == expected_names(), f"refresh with {WRITE_ENV}=1"

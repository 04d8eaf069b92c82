"""Protocol features that drivers rarely use, checked on the raw wire through the proxy."""

from __future__ import annotations

from pgcat_py.protocol import backend as be
from pgcat_py.protocol.frontend import FunctionCall, Parse, Sync
from tests.harness.proxy import ProxyProcess
from tests.harness.rawclient import RawClient

INT4PL_OID = 177  # pg_proc: int4pl(int4, int4), stable across PostgreSQL versions


def test_function_call_fast_path(tx_proxy: ProxyProcess) -> None:
    with RawClient.connect(tx_proxy.host, tx_proxy.port) as client:
        client.login("app", "app", "app")
        call = FunctionCall(INT4PL_OID, (1,), ((2).to_bytes(4, "big"), (40).to_bytes(4, "big")),
                            1)
        client.send(call.encode())
        messages = client.read_until(b"Z")
        responses = [be.decode_backend(t, p) for t, p in messages if t == ord("V")]
        assert responses == [be.FunctionCallResponse((42).to_bytes(4, "big"))]
        assert messages[-1] == (ord("Z"), b"I")
        # the server went back to the pool at that ReadyForQuery: the session still works
        assert client.query("select 1")[-1] == (ord("Z"), b"I")


def test_parse_error_then_sync_keeps_the_session(tx_proxy: ProxyProcess) -> None:
    with RawClient.connect(tx_proxy.host, tx_proxy.port) as client:
        client.login("app", "app", "app")
        client.send(Parse("", "selec 1").encode() + Sync().encode())
        messages = client.read_until(b"Z")
        errors = [be.decode_backend(t, p) for t, p in messages if t == ord("E")]
        assert len(errors) == 1
        assert isinstance(errors[0], be.NoticeOrError) and errors[0].sqlstate == "42601"
        assert client.query("select 2")[-1] == (ord("Z"), b"I")

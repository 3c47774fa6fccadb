"""What hpxd/doors/web/autobahn_adapter.py relies on in autobahn and
twisted.web, checked so that a new release that changes it fails here,
loudly, rather than somewhere in the doors."""

import inspect

import pytest_twisted
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol

from hpxd.app import Task
from hpxd.doors import Backpressure
from hpxd.doors.web.autobahn_adapter import ServerProtocol
from tests.door_clients import WsClient
from tests.support import start_service


def fresh_protocol():
    protocol = ServerProtocol()
    protocol.factory = WebSocketServerFactory()
    return protocol


def test_autobahn_still_refuses_the_protocols_own_close_codes_to_send_close():
    """If this fails, autobahn's public sendClose takes 1001 and 1003 now:
    send_close can use it instead of sendCloseFrame."""
    protocol = fresh_protocol()
    for code in (1001, 1003):
        try:
            protocol.sendClose(code=code, reason="x")
        except Exception as e:  # autobahn raises InvalidCloseCode (an Exception)
            assert "close code" in str(e).lower() or "invalid" in type(e).__name__.lower()
        else:
            raise AssertionError(f"autobahn's sendClose took {code}: use it in send_close")


def test_send_close_frame_takes_what_send_close_passes():
    parameters = inspect.signature(WebSocketServerProtocol.sendCloseFrame).parameters
    assert {"code", "reasonUtf8", "isReply"} <= set(parameters)


@pytest_twisted.ensureDeferred
async def test_a_live_connection_has_what_the_adapter_reads(tmp_path):
    """After the upgrade the transport's producer is the door's, not the
    HTTP channel's (take_over_producer); the protocol has the attributes
    ServerProtocol reads, with the meaning it reads them with."""
    raw = {"server": {"data_dir": str(tmp_path), "shutdown_timeout": 2},
           "tcp": {"listen": []}, "web": {"listen": ["tcp:0:interface=127.0.0.1"]},
           "backend": {"kind": "memory"}}
    service = await start_service(raw, Task("adapter"))
    client = await WsClient.connect(service)
    try:
        await client.guest()
        [connection] = service.node.hub.clients()
        transport = connection.protocol.transport
        assert isinstance(transport.producer, Backpressure)
        assert transport.streamingProducer is True
        protocol = connection.protocol
        assert protocol.failedByMe is False  # set True when autobahn fails the connection
        assert protocol.closeHandshakeTimeoutCall is None  # armed only by a close frame sent
        protocol.close_with(1001, "test")
        assert protocol.closeHandshakeTimeoutCall is not None
        assert callable(protocol.closeHandshakeTimeoutCall.cancel)
    finally:
        await client.close()
        await service.stopService()

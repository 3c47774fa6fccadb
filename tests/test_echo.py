"""The echo WebSocket at ``[web] echo_path`` (for the Autobahn|Testsuite):
off by default, echoes as it came, keeps /ws's limits and takes part in the
quit sequence. In process, real sockets on port 0, autobahn clients."""

import base64
import json
import os

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, endpoints, protocol
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from hpxd import config as configmod
from hpxd.app import Task
from hpxd.doors import WEB_RESOURCES
from tests.support import start_service, wait_until

TIMEOUT = 10

# Twisted's HTTP client (used here to ask) warns about its own transport.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Using readBody with a transport that does not have an abortConnection method")


@pytest.mark.parametrize("segment", sorted({*WEB_RESOURCES, "static"}))
def test_an_echo_path_on_a_path_the_web_door_serves_is_a_config_error(segment):
    with pytest.raises(configmod.ConfigError) as caught:
        configmod.from_dict({"web": {"echo_path": f"/{segment}"}}, web_paths=WEB_RESOURCES)
    assert caught.value.key == "web.echo_path"
    assert f"/{segment}" in caught.value.problem


# -- the resource, in a real service -------------------------------------------

class EchoWire(WebSocketClientProtocol):
    """Every message as ``(payload, isBinary)``, in arrival order."""

    def __init__(self):
        super().__init__()
        self.messages = defer.DeferredQueue()
        self.opened, self.lost = defer.Deferred(), defer.Deferred()

    def onOpen(self):
        self.opened.callback(None)

    def onMessage(self, payload, isBinary):
        self.messages.put((payload, isBinary))

    def onClose(self, wasClean, code, reason):
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"handshake refused: {reason}"))
        self.lost.callback(code)

    def next(self):
        from twisted.internet import reactor
        return self.messages.get().addTimeout(TIMEOUT, reactor)


class SilentWire(protocol.Protocol):
    """A WebSocket client that shakes hands and then never answers anything
    (not even a close frame): what is left when a quit gives up waiting."""

    def __init__(self):
        self.received = b""
        self.opened, self.lost = defer.Deferred(), defer.Deferred()

    def connectionMade(self):
        key = base64.b64encode(os.urandom(16))
        self.transport.write(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                             b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")

    def dataReceived(self, data):
        self.received += data
        if not self.opened.called and b"\r\n\r\n" in self.received:
            self.opened.callback(self.received.startswith(b"HTTP/1.1 101"))

    def connectionLost(self, reason):
        self.lost.callback(None)


class FloodWire(SilentWire):
    """Shakes hands, stops reading, then sends ``frames`` binary messages
    of 60,000 bytes: an echo client that never reads its echoes."""

    frames = 200  # 12 MB: far more than the kernel buffers of both ends hold

    def dataReceived(self, data):
        super().dataReceived(data)
        if self.opened.called and not getattr(self, "flooding", False):
            self.flooding = True
            self.transport.pauseProducing()  # never read again
            header = bytes([0x82, 0x80 | 126]) + (60000).to_bytes(2, "big") + bytes(4)
            for _ in range(self.frames):  # mask 0: the payload goes as it is
                self.transport.write(header + b"f" * 60000)


class Echoing:
    """A service started in this process and the clients of one test."""

    def __init__(self, service):
        self.service = service
        [door] = service.doors
        self.door, self.port = door, door.addresses()[0].port
        self.wires = []

    async def connect(self, raw=None):
        from twisted.internet import reactor
        if raw is not None:
            factory = protocol.Factory.forProtocol(raw)
        else:
            factory = WebSocketClientFactory(f"ws://127.0.0.1:{self.port}/echo")
            factory.protocol = EchoWire
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        wire = await endpoint.connect(factory)
        self.wires.append(wire)
        await wire.opened.addTimeout(TIMEOUT, reactor)
        return wire

    async def get(self, path):
        from twisted.internet import reactor
        response = await Agent(reactor).request(
            b"GET", f"http://127.0.0.1:{self.port}{path}".encode(), Headers({}))
        return response.code, json.loads(await readBody(response))

    async def close(self):
        for wire in self.wires:
            if not wire.lost.called:
                wire.transport.abortConnection()
                await wire.lost
        await self.service.stopService()


async def start(tmp_path, shutdown_timeout=2, **web):
    raw = {"server": {"data_dir": str(tmp_path), "shutdown_timeout": shutdown_timeout},
           "tcp": {"listen": []},
           "web": {"listen": ["tcp:0:interface=127.0.0.1"], "echo_path": "/echo", **web}}
    return Echoing(await start_service(raw, Task("echo")))


@pytest_twisted.async_yield_fixture
async def echoing(tmp_path):
    e = await start(tmp_path, max_body_bytes=1024)
    yield e
    await e.close()


@pytest_twisted.ensureDeferred
async def test_echo_is_off_by_default_and_its_path_is_a_json_404(tmp_path):
    raw = {"server": {"data_dir": str(tmp_path)}, "tcp": {"listen": []},
           "web": {"listen": ["tcp:0:interface=127.0.0.1"]}}
    web = Echoing(await start_service(raw, Task("echo")))
    try:
        assert web.service.config.web.echo_path == ""
        assert await web.get("/echo") == (404, {"error": "no such path '/echo'", "code": 404})
    finally:
        await web.close()


@pytest_twisted.ensureDeferred
async def test_text_and_binary_messages_come_back_as_they_came(echoing):
    wire = await echoing.connect()
    wire.sendMessage("héllo".encode("utf-8"), isBinary=False)
    wire.sendMessage(b"\x00\xffbinary\x80", isBinary=True)
    wire.sendMessage(b"", isBinary=False)
    assert await wire.next() == ("héllo".encode("utf-8"), False)
    assert await wire.next() == (b"\x00\xffbinary\x80", True)
    assert await wire.next() == (b"", False)


@pytest_twisted.ensureDeferred
async def test_an_oversize_message_is_closed_with_1009_and_the_daemon_stays_usable(echoing):
    wire = await echoing.connect()
    wire.sendMessage(b"x" * 1025, isBinary=True)  # max_body_bytes is 1024
    assert await wire.lost.addTimeout(TIMEOUT, _reactor()) == 1009
    again = await echoing.connect()
    again.sendMessage(b"y" * 1024, isBinary=True)
    assert await again.next() == (b"y" * 1024, True)
    assert (await echoing.get("/healthz"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_a_client_that_sends_without_reading_stops_being_read(tmp_path):
    from twisted.internet import reactor
    # max_body_bytes 1 MiB: each 60,000-byte message is echoed. No handshake
    # timeout: the flooding client never answers the close at the end.
    echo = await start(tmp_path, ws_handshake_timeout=0)
    try:
        await echo.connect(FloodWire)
        [server] = echo.door.site.resource.children[b"echo"].factory.connections
        await wait_until(lambda: server.transport not in reactor.getReaders())
        assert server.state == server.STATE_OPEN  # paused, not closed
    finally:
        await echo.close()


@pytest_twisted.ensureDeferred
async def test_open_echo_connections_do_not_hold_up_the_drain(echoing):
    await echoing.connect()
    assert echoing.door.drain().called  # an echo never has a call in flight


@pytest_twisted.ensureDeferred
async def test_the_quit_sequence_closes_echo_connections_with_1001(echoing):
    wires = [await echoing.connect(), await echoing.connect()]
    await echoing.service.quit()
    codes = [await wire.lost.addTimeout(TIMEOUT, _reactor()) for wire in wires]
    assert codes == [1001, 1001]


@pytest_twisted.ensureDeferred
async def test_a_quit_that_gives_up_drops_an_echo_client_that_does_not_answer_the_close(
        tmp_path):
    # No handshake timeouts (0): nothing but the quit sequence cancelling its
    # wait can drop a client that never answers the close frame.
    echo = await start(tmp_path, shutdown_timeout=0.2, ws_handshake_timeout=0)
    try:
        wire = await echo.connect(SilentWire)
        assert wire.received.startswith(b"HTTP/1.1 101")
        await echo.service.quit()
        await wire.lost.addTimeout(5, _reactor())
        frames = wire.received.split(b"\r\n\r\n", 1)[1]
        assert frames[:1] == b"\x88" and frames[2:4] == (1001).to_bytes(2, "big")  # close, 1001
    finally:
        await echo.close()


def _reactor():
    from twisted.internet import reactor
    return reactor

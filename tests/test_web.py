"""The web listener (one twisted.web Site, resources from the registry) and
its /healthz and /readyz checks, in process on real sockets."""

import json
import os
import socket

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from zope.interface.verify import verifyObject

from hpxd import config as configmod
from hpxd.app import Task
from hpxd.core.interfaces import IDoor
from hpxd.service import HpxdService
from tests.support import RawHttp, flooded_away, slow_ws_reader, start_service

# Twisted's HTTP client (used here to ask) warns about its own transport.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Using readBody with a transport that does not have an abortConnection method")


def make_app(pending):
    app = Task("web")

    @app.function
    def block(item):
        d = defer.Deferred()
        pending.append(d)
        return d

    return app


class Web:
    def __init__(self, service, pending):
        self.service, self.pending = service, pending
        [door] = service.doors
        self.port = door.addresses()[0].port

    async def get(self, path, method=b"GET"):
        from twisted.internet import reactor
        response = await Agent(reactor).request(
            method, f"http://127.0.0.1:{self.port}{path}".encode(), Headers({}))
        body = await readBody(response)
        return response, json.loads(body) if body else None


async def start(tmp_path, backend=None, **web):
    raw = {"server": {"data_dir": str(tmp_path), "shutdown_timeout": 2},
           "tcp": {"listen": []}, "web": {"listen": ["tcp:0:interface=127.0.0.1"], **web},
           "backend": backend or {"kind": "memory"}}
    pending = []
    return Web(await start_service(raw, make_app(pending)), pending)


async def stop(web):
    for d in web.pending:
        if not d.called:
            d.callback(None)
    await web.service.stopService()


def sleep(seconds):
    from twisted.internet import reactor
    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.async_yield_fixture
async def web(tmp_path):
    w = await start(tmp_path)
    yield w
    await stop(w)


def test_the_web_door_keeps_the_door_contract(tmp_path):
    from twisted.internet.task import Clock
    raw = {"server": {"data_dir": str(tmp_path)}, "tcp": {"listen": []},
           "web": {"listen": ["tcp:0:interface=127.0.0.1"]}}
    config = configmod.from_dict(raw)
    config.resolve_paths()
    service = HpxdService(config, make_app([]), Clock())
    assert [door.name for door in service.doors] == ["web"]
    assert verifyObject(IDoor, service.doors[0])
    service.node.records.close()


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path", ["//", "/nope", "/healthz/extra/x", "/wss"])
async def test_a_path_nobody_serves_is_a_json_404(web, path):
    response, body = await web.get(path)
    if path.startswith("/healthz/"):  # a leaf answers for everything below it
        assert response.code == 200
        return
    assert response.code == 404
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json; charset=utf-8"]
    assert body == {"error": f"no such path {path!r}", "code": 404}


@pytest_twisted.ensureDeferred
async def test_healthz(web):
    response, body = await web.get("/healthz")
    assert (response.code, body) == (200, {"status": "live"})


@pytest_twisted.ensureDeferred
async def test_a_body_past_max_body_bytes_is_refused_and_the_listener_goes_on(web):
    import io

    from twisted.internet import reactor
    from twisted.web.client import FileBodyProducer
    url = f"http://127.0.0.1:{web.port}/healthz".encode()
    body = FileBodyProducer(io.BytesIO(b"x" * (2 * 1024 * 1024)))  # the cap is 1 MiB
    response = await Agent(reactor).request(b"POST", url, Headers({}), body)
    answer = json.loads(await readBody(response))
    assert response.code == 400
    assert answer == {"code": 410,
                      "error": "request body larger than 1048576 bytes ([web] max_body_bytes)"}
    response, body = await web.get("/healthz")
    assert (response.code, body) == (200, {"status": "live"})


async def answer_within(port, request, seconds):
    """What the server answers to the raw bytes ``request`` (which it never
    gets more of) and closes the connection after, within ``seconds``."""
    from twisted.internet import reactor
    client = RawHttp(request)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5), client)
    client.done.addTimeout(seconds, reactor)
    try:
        raw = await client.done
    except defer.TimeoutError:
        client.transport.abortConnection()
        raise AssertionError(f"no answer and no close within {seconds} s: {client.data!r}") \
            from None
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], json.loads(body)


@pytest_twisted.ensureDeferred
async def test_a_declared_body_past_max_body_bytes_is_answered_before_it_is_sent(web):
    request = (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
               % (2 * 1024 * 1024))
    status, body = await answer_within(web.port, request, 3)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert body["code"] == 410


@pytest_twisted.ensureDeferred
async def test_a_body_that_stops_arriving_is_cut_at_the_body_timeout(web):
    [door] = web.service.doors
    door.site.body_timeout = 0.3  # BODY_TIMEOUT, shortened for the test
    request = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"
    status, body = await answer_within(web.port, request, 3)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert body == {"code": 410, "error": "request body not received within 0.3 s "
                                          "(10 of 100 bytes)"}


@pytest_twisted.ensureDeferred
async def test_other_methods_get_a_json_405_naming_the_method(web):
    """Every resource alike: tests/test_web_methods.py."""
    response, body = await web.get("/healthz", method=b"POST")
    assert response.code == 405
    assert response.headers.getRawHeaders(b"allow") == [b"GET, HEAD"]
    assert body == {"code": 418, "error": "/healthz takes GET or HEAD, not POST"}


@pytest_twisted.ensureDeferred
async def test_readyz_is_503_while_draining(web):
    response, body = await web.get("/readyz")
    assert (response.code, body) == (200, {"status": "ready", "checks": {
        "accepting": True, "backend": True, "database": True}})
    node = web.service.node
    session = await node.sessions.create({"user_name": None, "role": "guest"})
    running = node.dispatcher.call(session, "block")
    drained = node.dispatcher.drain()  # what a quit does first
    response, body = await web.get("/readyz")
    assert response.code == 503
    assert body["status"] == "not ready" and body["checks"]["accepting"] is False
    web.pending[0].callback("done")
    assert (await running) == "done"
    await drained


@pytest_twisted.ensureDeferred
async def test_readyz_is_503_while_redis_is_down_and_200_after(tmp_path, redis_server):
    web = await start(tmp_path, {"kind": "redis", "redis_url": redis_server.url})
    try:
        assert (await web.get("/readyz"))[0].code == 200
        redis_server.stop()
        for _ in range(50):
            response, body = await web.get("/readyz")
            if response.code == 503:
                break
            await sleep(0.1)
        assert response.code == 503 and body["checks"]["backend"] is False
        redis_server.start()
        for _ in range(100):
            response, body = await web.get("/readyz")
            if response.code == 200:
                break
            await sleep(0.1)
        assert (response.code, body["checks"]) == (200, {
            "accepting": True, "backend": True, "database": True})
    finally:
        await stop(web)


@pytest_twisted.ensureDeferred
async def test_the_quit_sequence_closes_keep_alive_connections(web):
    sock = socket.create_connection(("127.0.0.1", web.port), timeout=5)
    sock.setblocking(False)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive by default
        reply = b""
        for _ in range(100):
            await sleep(0.01)
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            reply += chunk
            if b'"live"' in reply:
                break
        assert reply.startswith(b"HTTP/1.1 200")
        await web.service.quit()
        closed = False
        for _ in range(100):
            await sleep(0.01)
            try:
                closed = sock.recv(1) == b""
            except BlockingIOError:
                continue
            except ConnectionResetError:
                closed = True
            if closed:
                break
        assert closed
    finally:
        sock.close()


@pytest_twisted.ensureDeferred
async def test_a_websocket_client_that_does_not_read_is_dropped(tmp_path):
    """Pushes to a client that never reads pile up in the server only up to
    [web] max_queued_bytes (beyond what the kernel buffers): then it is dropped."""
    web = await start(tmp_path, max_queued_bytes=256 * 1024)
    sock = slow_ws_reader(web.port)
    try:
        sock.setblocking(False)
        hub = web.service.node.hub
        while not hub.clients():  # the upgrade is done
            await sleep(0.01)
        assert await flooded_away(hub, "x" * 60000), "the client that does not read was kept"
    finally:
        sock.close()
        await stop(web)


@pytest_twisted.ensureDeferred
async def test_a_tcp_client_that_does_not_read_is_dropped(tmp_path):
    """The same bound on the TCP door: [tcp] max_queued_bytes."""
    import gzip
    raw = {"server": {"data_dir": str(tmp_path)}, "web": {"listen": []},
           "tcp": {"listen": ["tcp:0:interface=127.0.0.1"], "max_queued_bytes": 256 * 1024}}
    service = await start_service(raw, make_app([]))
    [door] = service.doors
    sock = socket.create_connection(("127.0.0.1", door.addresses()[0].port), timeout=5)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(gzip.compress(json.dumps({"session": "", "name": "t", "data": {}}).encode())
                     + b"<EOF>")
        hub = service.node.hub
        while not hub.clients() or hub.clients()[0].session_id is None:
            await sleep(0.01)
        # Hex of random bytes: gzip cannot shrink it away.
        assert await flooded_away(hub, os.urandom(45000).hex()), \
            "the client that does not read was kept"
    finally:
        sock.close()
        await service.stopService()

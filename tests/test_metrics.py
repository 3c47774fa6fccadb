"""GET /metrics (issue 12 B2): the Prometheus text of a real service in this
process, scraped after real traffic on the TCP and WebSocket doors, on both
backends, and read back with ``prometheus_client.parser``."""

import gzip
import io
import json
import os
import socket

import pytest
import pytest_twisted
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import endpoints, task as ttask
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from hpxd.app import Task
from hpxd.core.metrics import SAMPLE_EVERY, UNKNOWN_FUNCTION
from hpxd.core.passwords import hash_password
from tests.door_clients import TcpClient, WsClient, _HpxWire
from tests.support import flooded_away, slow_ws_reader, start_service

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using readBody with a transport that does not have an abortConnection method")

PASSWORD = "alice-secret-pw-1"
LOCAL = "tcp:0:interface=127.0.0.1"


def make_app():
    app = Task("metered")

    @app.function
    def add(item, a, b=0):
        return a + b

    @app.function
    def refuse(item):
        raise item.error("no")

    @app.function
    def crash(item):
        raise RuntimeError("a bug")

    @app.function(requires="edit")
    def change(item):
        return "changed"

    @app.function
    def count(item):  # changes session data: the call waits for the save
        item.session.data["n"] = item.session.data.get("n", 0) + 1
        return item.session.data["n"]

    @app.function
    def announce(item):
        return item.broadcast("news", "hello").addCallback(lambda _: True)

    return app


def config(tmp_path, backend, web=None, tcp=None, metrics=None, name="metered"):
    return {"server": {"name": name, "data_dir": str(tmp_path / name), "shutdown_timeout": 2},
            "tcp": {"listen": [LOCAL], **(tcp or {})},
            "web": {"listen": [LOCAL], **(web or {})},
            "metrics": metrics or {},
            "auth": {"failed_login_delay": 0.05},
            "backend": backend,
            "users": [{"name": "alice", "password_hash": hash_password(PASSWORD, log2_n=10),
                       "role": "user"}]}


class Node:
    """A running service and the clients a test opened on it."""

    def __init__(self, service):
        self.service = service
        self.clients = []
        [self.web_port] = [a.port for d in service.doors if d.name == "web"
                           for a in d.addresses()]

    async def client(self, client_class):
        client = await client_class.connect(self.service)
        self.clients.append(client)
        return client

    async def get(self, path, port=None):
        from twisted.internet import reactor
        response = await Agent(reactor).request(
            b"GET", f"http://127.0.0.1:{port or self.web_port}{path}".encode(), Headers({}))
        return response, (await readBody(response)).decode("utf-8")

    def port_of(self, door):
        [port] = [a.port for d in self.service.doors if d.name == door for a in d.addresses()]
        return port

    async def scrape(self, port=None):
        """``{(sample name, frozenset of labels): value}`` and the text."""
        response, text = await self.get("/metrics", port)
        assert response.code == 200, text
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[sample.name, frozenset(sample.labels.items())] = sample.value
        return samples, text

    async def stop(self):
        for client in self.clients:
            await client.close()
        await self.service.stopService()


async def start(tmp_path, backend, **sections):
    return Node(await start_service(config(tmp_path, backend, **sections), make_app()))


@pytest_twisted.async_yield_fixture
async def node(tmp_path, backend):
    n = await start(tmp_path, backend)
    yield n
    await n.stop()


def sleep(seconds):
    from twisted.internet import reactor
    return ttask.deferLater(reactor, seconds, lambda: None)


async def fails(awaitable):
    try:
        await awaitable
    except Exception as e:
        return e
    raise AssertionError("the call did not fail")


def calls_of(samples):
    return {(labels["door"], labels["function"], labels["code"]): value
            for (name, labels_set), value in samples.items() if name == "hpxd_calls_total"
            for labels in [dict(labels_set)]}


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


# -- calls ------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_call_counters_equal_the_calls_made_per_door_function_and_code(node):
    tcp = await node.client(TcpClient)
    await tcp.guest()
    for n in range(3):
        await tcp.call("add", kwargs={"a": n, "b": 1})
    await fails(tcp.call("refuse"))  # 400
    await fails(tcp.call("change"))  # 406: a guest may not edit
    await fails(tcp.call("no_such_function"))  # 404
    for _ in range(2):
        await tcp.call("count")
    await fails(tcp.call("crash"))  # 100
    ws = await node.client(WsClient)
    await ws.login("alice", PASSWORD)
    for n in range(2):
        await ws.call("add", [n, 2])
    await ws.call("change")
    await fails(ws.call("refuse"))
    await fails(ws.call("catalog.nothing"))
    await fails(ws.call("add", kwargs={"c": 1}))  # 413
    samples, _ = await node.scrape()
    assert calls_of(samples) == {
        ("tcp", "add", "ok"): 3, ("tcp", "refuse", "400"): 1, ("tcp", "change", "406"): 1,
        ("tcp", UNKNOWN_FUNCTION, "404"): 1, ("tcp", "count", "ok"): 2,
        ("tcp", "crash", "100"): 1,
        ("ws", "add", "ok"): 2, ("ws", "change", "ok"): 1, ("ws", "refuse", "400"): 1,
        ("ws", UNKNOWN_FUNCTION, "404"): 1, ("ws", "add", "413"): 1,
    }


@pytest_twisted.ensureDeferred
async def test_an_unknown_function_name_is_counted_under_one_fixed_label(node):
    tcp = await node.client(TcpClient)
    await tcp.guest()
    ws = await node.client(WsClient)
    names = ["secret_name_from_tcp", "deep.secret.name_from_tcp"]
    for name in names:
        assert (await fails(tcp.call(name))).code == 404
    assert (await fails(ws.call("secret_name_from_ws"))).code == 404
    samples, text = await node.scrape()
    assert calls_of(samples) == {("tcp", UNKNOWN_FUNCTION, "404"): 2,
                                 ("ws", UNKNOWN_FUNCTION, "404"): 1}
    assert "secret_name" not in text


@pytest_twisted.ensureDeferred
async def test_no_session_id_password_or_user_name_appears(node):
    tcp = await node.client(TcpClient)
    tcp_session = await tcp.login("alice", PASSWORD)
    await tcp.call("count")
    ws = await node.client(WsClient)
    ws_session = await ws.login("alice", PASSWORD)
    await ws.call("add", [1, 2])
    guest = await node.client(WsClient)
    guest_session = await guest.guest()
    _, text = await node.scrape()
    for secret in (tcp_session, ws_session, guest_session, PASSWORD, "alice"):
        assert secret not in text


@pytest_twisted.ensureDeferred
async def test_the_latency_histogram_times_one_call_in_sample_every(node):
    tcp = await node.client(TcpClient)
    await tcp.guest()
    for n in range(2 * SAMPLE_EVERY):
        await tcp.call("add", kwargs={"a": n})
    samples, _ = await node.scrape()
    assert value(samples, "hpxd_call_duration_seconds_count", door="tcp") == 2
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in samples.items()
                     if name == "hpxd_call_duration_seconds_bucket")
    assert buckets[-1] == (float("inf"), 2)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert 0 < value(samples, "hpxd_call_duration_seconds_sum", door="tcp") < 1


# -- connections, bytes, sessions ---------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_open_connections_per_door(node):
    tcp = await node.client(TcpClient)
    ws = await node.client(WsClient)
    samples, _ = await node.scrape()
    assert value(samples, "hpxd_connections", door="tcp") == 1
    assert value(samples, "hpxd_connections", door="ws") == 1
    assert value(samples, "hpxd_connections", door="web") == 1  # this scrape's own
    await tcp.close()
    await ws.close()
    node.clients.clear()
    for _ in range(100):
        samples, _ = await node.scrape()
        if value(samples, "hpxd_connections", door="ws") == 0:
            break
        await sleep(0.02)
    assert value(samples, "hpxd_connections", door="tcp") == 0
    assert value(samples, "hpxd_connections", door="ws") == 0


class CountingWire(_HpxWire):
    """The TCP test client's wire, counting the bytes it moves."""

    sent = received = 0

    def dataReceived(self, data):
        self.received += len(data)
        super().dataReceived(data)

    def send(self, message):
        data = gzip.compress(json.dumps(message).encode()) + b"<EOF>"
        self.sent += len(data)
        self.transport.write(data)


@pytest_twisted.ensureDeferred
async def test_tcp_bytes_in_and_out_equal_what_the_client_moved(node):
    from twisted.internet import reactor
    [port] = [a.port for d in node.service.doors if d.name == "tcp" for a in d.addresses()]
    wire = await endpoints.connectProtocol(
        endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port), CountingWire())
    tcp = TcpClient(wire, await wire.next())
    node.clients.append(tcp)
    await tcp.guest()
    for n in range(5):
        await tcp.call("add", kwargs={"a": n})
    samples, _ = await node.scrape()
    assert value(samples, "hpxd_bytes_received_total", door="tcp") == wire.sent
    assert value(samples, "hpxd_bytes_sent_total", door="tcp") == wire.received


@pytest_twisted.ensureDeferred
async def test_sessions_in_use_by_connections_and_stored(node, backend):
    tcp = await node.client(TcpClient)
    await tcp.guest()
    second = await node.client(TcpClient)
    await second.attach(tcp.session)  # the same session on a second connection
    ws = await node.client(WsClient)
    await ws.login("alice", PASSWORD)
    samples, _ = await node.scrape()
    assert value(samples, "hpxd_sessions_connected") == 2
    stored = value(samples, "hpxd_sessions_stored")
    assert stored == (2 if backend["kind"] == "memory" else None)  # Redis: not counted here


@pytest_twisted.ensureDeferred
async def test_a_dropped_slow_tcp_client_is_counted(tmp_path):
    node = await start(tmp_path, {"kind": "memory"}, tcp={"max_queued_bytes": 256 * 1024})
    [port] = [a.port for d in node.service.doors if d.name == "tcp" for a in d.addresses()]
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hub = node.service.node.hub
        while not hub.clients():
            await sleep(0.01)
        samples, _ = await node.scrape()
        assert value(samples, "hpxd_slow_clients_dropped_total", door="tcp") == 0
        # Hex of random bytes: gzip cannot shrink it away.
        assert await flooded_away(hub, os.urandom(45000).hex())
        samples, _ = await node.scrape()
        assert value(samples, "hpxd_slow_clients_dropped_total", door="tcp") == 1
    finally:
        sock.close()
        await node.stop()


@pytest_twisted.ensureDeferred
async def test_ws_bytes_in_and_out_equal_the_message_payloads(node):
    ws = await node.client(WsClient)
    sent, received = [], []
    ws.wire.sendMessage = _recording(ws.wire.sendMessage, sent)
    ws.wire.onMessage = _recording(ws.wire.onMessage, received)
    await ws.guest()
    for n in range(5):
        await ws.call("add", kwargs={"a": n})
    samples, _ = await node.scrape()
    assert value(samples, "hpxd_bytes_received_total", door="ws") == sum(sent)
    assert value(samples, "hpxd_bytes_sent_total", door="ws") == sum(received)
    await ws.close()
    samples, _ = await node.scrape()  # a closed connection's bytes still count
    assert value(samples, "hpxd_bytes_received_total", door="ws") == sum(sent)


def _recording(method, sizes):
    def record(payload, *args, **kwargs):
        sizes.append(len(payload))
        return method(payload, *args, **kwargs)
    return record


@pytest_twisted.ensureDeferred
async def test_a_dropped_slow_ws_client_is_counted(tmp_path):
    node = await start(tmp_path, {"kind": "memory"}, web={"max_queued_bytes": 256 * 1024})
    sock = slow_ws_reader(node.web_port)
    try:
        hub = node.service.node.hub
        while not hub.clients():
            await sleep(0.01)
        samples, _ = await node.scrape()
        assert value(samples, "hpxd_slow_clients_dropped_total", door="ws") == 0
        assert await flooded_away(hub, "x" * 60000)
        samples, _ = await node.scrape()
        assert value(samples, "hpxd_slow_clients_dropped_total", door="ws") == 1
    finally:
        sock.close()
        await node.stop()


# -- Redis --------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_redis_round_trips_and_errors(tmp_path, redis_server):
    node = await start(tmp_path, {"kind": "redis", "redis_url": redis_server.url})
    try:
        tcp = await node.client(TcpClient)
        await tcp.guest()
        samples, _ = await node.scrape()
        before = value(samples, "hpxd_redis_round_trips_total")
        await tcp.call("add", kwargs={"a": 1})  # one session read: one round trip
        samples, _ = await node.scrape()
        assert value(samples, "hpxd_redis_round_trips_total") == before + 1
        assert value(samples, "hpxd_redis_errors_total") == 0
        redis_server.stop()
        for _ in range(100):  # until the node has seen its connections go
            if not node.service.node.backend_ready():
                break
            await sleep(0.02)
        assert (await fails(tcp.call("add", kwargs={"a": 1}))).code == 504
        samples, _ = await node.scrape()
        assert value(samples, "hpxd_redis_errors_total") == 1
    finally:
        await node.stop()


@pytest_twisted.ensureDeferred
async def test_hub_messages_out_of_one_node_and_into_another(tmp_path, redis_server):
    backend = {"kind": "redis", "redis_url": redis_server.url}
    a = Node(await start_service(config(tmp_path, backend, name="a"), make_app()))
    b = Node(await start_service(config(tmp_path, backend, name="b"), make_app()))
    try:
        tcp = await a.client(TcpClient)
        await tcp.guest()
        await tcp.call("announce")
        for _ in range(100):
            samples_b, _ = await b.scrape()
            if value(samples_b, "hpxd_hub_messages_total", direction="in"):
                break
            await sleep(0.02)
        samples_a, _ = await a.scrape()
        assert value(samples_a, "hpxd_hub_messages_total", direction="out") == 1
        assert value(samples_a, "hpxd_hub_messages_total", direction="in") == 0  # its own echo
        assert value(samples_b, "hpxd_hub_messages_total", direction="in") == 1
        assert value(samples_b, "hpxd_hub_messages_total", direction="out") == 0
    finally:
        await a.stop()
        await b.stop()


# -- the resource -------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_metrics_is_prometheus_text(node):
    response, text = await node.get("/metrics")
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [CONTENT_TYPE_LATEST.encode()]
    assert "# TYPE hpxd_calls_total counter" in text


@pytest_twisted.ensureDeferred
async def test_metrics_false_answers_the_json_404_of_an_unknown_path(tmp_path):
    node = await start(tmp_path, {"kind": "memory"}, web={"metrics": False})
    try:
        response, text = await node.get("/metrics")
        assert response.code == 404
        assert json.loads(text) == {"error": "no such path '/metrics'", "code": 404}
    finally:
        await node.stop()


@pytest_twisted.ensureDeferred
async def test_a_listener_of_its_own_serves_metrics_and_health_only(tmp_path):
    node = await start(tmp_path, {"kind": "memory"}, web={"metrics": False},
                       metrics={"listen": [LOCAL]})
    try:
        private = node.port_of("metrics")
        assert private != node.web_port
        tcp = await node.client(TcpClient)
        await tcp.guest()
        await tcp.call("add", kwargs={"a": 1, "b": 2})
        ws = await node.client(WsClient)
        await ws.login("alice", PASSWORD)
        await ws.call("add", [3, 4])
        samples, _ = await node.scrape(private)
        assert calls_of(samples) == {("tcp", "add", "ok"): 1, ("ws", "add", "ok"): 1}
        # The doors' connections, not the metrics listener's own scrape.
        assert value(samples, "hpxd_connections", door="tcp") == 1
        assert value(samples, "hpxd_connections", door="ws") == 1
        assert value(samples, "hpxd_connections", door="web") == 0
        assert (await node.get("/metrics"))[0].code == 404  # not on the public listener
        assert (await node.get("/readyz", private))[0].code == 200
        assert (await node.get("/healthz", private))[0].code == 200
        for path in ("/", "/ws", "/console/", "/static/x"):
            response, text = await node.get(path, private)
            assert response.code == 404, path
            assert json.loads(text)["code"] == 404
        from twisted.internet import reactor
        from twisted.web.client import FileBodyProducer
        response = await Agent(reactor).request(
            b"POST", f"http://127.0.0.1:{private}/metrics".encode(), Headers({}),
            FileBodyProducer(io.BytesIO(b"x")))
        assert json.loads(await readBody(response)) == {
            "code": 410, "error": "request body larger than 0 bytes (the [metrics] listener "
                                  "takes no request body)"}
    finally:
        await node.stop()


# -- the dispatcher's counts, without doors ---------------------------------------------

@pytest.fixture
def bare_node():
    from twisted.internet.task import Clock

    from hpxd.backends.memory import MemoryHub, MemoryScope, MemorySessionStore
    from hpxd.core import errors
    from hpxd.core.auth import Authenticator, Role
    from hpxd.core.node import Node

    class TeapotError(errors.HpxdError):  # an app's own class, its code not in the table
        code = 499  # in no error table

    app = make_app()

    @app.function
    def teapot(item):
        raise TeapotError("short and stout")

    clock = Clock()
    roles = {"guest": Role("guest", privileges={"*": frozenset({"view"})})}
    auth = Authenticator(roles, {}, True, "guest", 1.0, clock)
    return Node("unit", app, auth, MemorySessionStore(60, clock=clock), MemoryScope(),
                MemoryHub())


async def guest_session(node):
    return await node.sessions.create({"user_name": None, "role": "guest"})


@pytest_twisted.ensureDeferred
async def test_a_call_without_environ_is_counted_under_door_none(bare_node):
    session = await guest_session(bare_node)
    assert await bare_node.dispatcher.call(session, "add", (1, 2)) == 3
    assert bare_node.dispatcher.metrics.calls() == {("none", "add", "ok"): 1}


@pytest_twisted.ensureDeferred
async def test_an_error_code_outside_the_error_table_is_labelled_other(bare_node):
    session = await guest_session(bare_node)
    environ = {"door": "unit"}
    error = await fails(bare_node.dispatcher.call(session, "teapot", environ=environ))
    assert error.code == 499
    assert bare_node.dispatcher.metrics.calls() == {("unit", "teapot", "other"): 1}


@pytest_twisted.ensureDeferred
async def test_a_call_refused_while_stopping_keeps_its_function_label(bare_node):
    session = await guest_session(bare_node)
    await bare_node.dispatcher.drain()  # stop taking calls
    environ = {"door": "unit"}
    for name in ("add", "no_such_function"):
        assert (await fails(bare_node.dispatcher.call(session, name, environ=environ))).code == 503
    assert bare_node.dispatcher.metrics.calls() == {("unit", "add", "503"): 1,
                                                     ("unit", UNKNOWN_FUNCTION, "503"): 1}

"""Redis going away at the worst moment: while the node's connections wait
for the reply to their handshake (AUTH, SELECT; the subscriber's SUBSCRIBE).

txredisapi takes a connection lost during its handshake for a refusal and
stops reconnecting (``factory.stopTrying()``): without hpxd's adapter the
node would never talk to Redis again. Made deterministic by pausing the
server (SIGSTOP: the kernel still accepts connections, and what the node
sends waits unread) before killing it.

Also here: a wrong password (a refusal: logged once, retried slowly), the
adapter's checks against txredisapi itself (they fail when a release
changes what it relies on), and which endpoint a Redis address gets.
"""

import gc
import inspect

import pytest
import pytest_twisted
import txredisapi
from twisted.internet import defer, endpoints, error, task
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from hpxd.backends.redis import RedisLink
from hpxd.core import errors
from hpxd.core.interfaces import IHubClient
from tests.support import RedisServer, started_backend, stopped_backend

POOL_SIZE = 2
CONNECTIONS = POOL_SIZE + 1  # the pool and the hub subscriber, per node


@implementer(IHubClient)
class Client:
    def __init__(self, client_id):
        self.client_id, self.session_id, self.got = client_id, None, []

    def deliver(self, message):
        self.got.append((message.action, message.data))


def sleep(seconds):
    from twisted.internet import reactor
    return task.deferLater(reactor, seconds, lambda: None)


@pytest.fixture
def logged():
    """Every event logged during the test, formatted."""
    events = []
    globalLogPublisher.addObserver(events.append)
    yield lambda: [formatEvent(e) for e in events]
    globalLogPublisher.removeObserver(events.append)


@pytest.fixture(params=[None, "hpxd pw"], ids=["no-password", "password"])
def redis(request, tmp_path):
    server = RedisServer(tmp_path, request.param).start()
    yield server
    server.stop()


def start_node(url, connect_timeout=5):
    return started_backend({"backend": {"kind": "redis", "redis_url": url,
                                        "redis_pool_size": POOL_SIZE,
                                        "redis_connect_timeout": connect_timeout}})


stop_node = stopped_backend


async def until(condition, seconds, what, logged):
    from twisted.internet import reactor
    deadline = reactor.seconds() + seconds
    while not condition():
        if reactor.seconds() > deadline:
            pytest.fail(f"not within {seconds} s: {what}; logged meanwhile:\n"
                        + "\n".join(logged()[-30:]))
        await sleep(0.05)


@pytest_twisted.ensureDeferred
async def test_nodes_reconnect_after_redis_dies_during_their_handshake(redis, logged):
    nodes = [await start_node(redis.url), await start_node(redis.url)]
    try:
        redis.stop()
        # The reactor does not turn during these two blocking calls, so no
        # node connection can reach the new server before it is paused.
        redis.start()
        redis.pause()
        await until(lambda: redis.unread_connections() == 2 * CONNECTIONS, 10,
                    "every connection of both nodes waiting for its handshake reply", logged)
        with pytest.raises(errors.BackendUnavailable):  # meanwhile: 504 at once
            await nodes[0].scope.get("k")
        redis.stop()  # SIGKILL: every one of those connections is reset
        redis.start()
        await until(lambda: all(node.is_ready() for node in nodes), 15,
                    "both nodes connected and subscribed again", logged)

        a, b = nodes
        session = await a.sessions.create({"user_name": "ann", "role": "user"})
        assert (await b.sessions.get(session.id)).user_info["user_name"] == "ann"
        await a.scope.set("k", {"n": 1})
        assert await b.scope.get("k") == {"n": 1}
        on_a, on_b = Client("on-a"), Client("on-b")
        a.hub.register(on_a)
        b.hub.register(on_b)
        await a.hub.broadcast("from-a", 1)
        await b.hub.broadcast("from-b", 2)
        await until(lambda: ("from-a", 1) in on_b.got and ("from-b", 2) in on_a.got, 5,
                    "a broadcast from each node reaching a client of the other", logged)
        a.hub.unregister(on_a)
        b.hub.unregister(on_b)

        # Said once per pool (its connections were all lost at once), and
        # once per subscriber when it had a handshake (AUTH) to lose.
        lost = [line for line in logged() if "during its handshake" in line]
        assert sum("command pool" in line for line in lost) == 2, lost
        assert sum("hub subscriber" in line for line in lost) == (2 if redis.password else 0), lost
    finally:
        redis.stop()
        for node in nodes:
            await stop_node(node)


def connections_received(server):
    info = server.command(b"INFO", b"stats").decode()
    return int(info.split("total_connections_received:")[1].split()[0])


@pytest_twisted.ensureDeferred
async def test_a_wrong_password_is_a_refusal_logged_once_and_retried_slowly(tmp_path, logged):
    server = RedisServer(tmp_path, "right").start()
    node = await start_node(server.url.replace(":right@", ":wrong@"), connect_timeout=1)
    try:
        with pytest.raises(errors.BackendUnavailable):
            await node.sessions.create({"user_name": None, "role": "guest"})
        before = connections_received(server)
        await sleep(3)
        attempts = connections_received(server) - before - 1  # - our INFO's own
        # Backing off to one attempt every 2 s per connection: it keeps
        # trying (a fixed password is picked up) without hammering Redis.
        assert CONNECTIONS <= attempts <= 3 * CONNECTIONS
        assert not node.is_ready()
        gc.collect()
        refusals = [line for line in logged() if "WRONGPASS" in line]
        assert len(refusals) == 2, refusals  # the pool's and the subscriber's, once each
        assert all("during its handshake" in line for line in refusals), refusals
        assert not [line for line in logged() if "Unhandled error" in line]
    finally:
        await stop_node(node)
        server.stop()


# -- The adapter (hpxd.backends.redis._Factory) against txredisapi itself ------
# These fail when a txredisapi release changes what the adapter relies on.

def _parameters(function):
    return list(inspect.signature(function).parameters)


def test_txredisapi_still_has_what_the_adapter_uses_with_the_same_shapes():
    factory = txredisapi.RedisFactory
    assert _parameters(factory.startConnecting) == ["self", "endpoint"]
    assert _parameters(factory.disconnect) == ["self"]
    assert _parameters(factory.buildProtocol) == ["self", "addr"]
    assert _parameters(factory.stopTrying) == ["self"]
    assert _parameters(factory.connectionError) == ["self", "why"]
    assert isinstance(factory(None, 0, 1).deferred, defer.Deferred)
    for name in ("whenConnected", "whenDisconnected"):
        assert _parameters(getattr(txredisapi.BaseRedisProtocol, name)) == ["self"]
    assert _parameters(txredisapi.SubscriberProtocol.messageReceived) == [
        "self", "pattern", "channel", "message"]


def _handshaking(link):
    """A pooled connection over a StringTransport that has sent its AUTH."""
    connection = link.pool.buildProtocol(None)
    connection.makeConnection(StringTransport())
    assert connection.transport.value().startswith(b"*2\r\n$4\r\nAUTH\r\n")
    return connection


def test_txredisapi_still_calls_stop_trying_on_a_lost_handshake_and_the_pool_keeps_going(
        logged):
    """txredisapi stops the whole pool through ``factory.stopTrying()`` when a
    handshake fails; the adapter's stopTrying keeps it going, and the
    reason (connectionError) is logged once until a connection is made."""
    link = RedisLink("redis://:pw@127.0.0.1:1/0", 2, 1, 1, MemoryReactorClock())
    stops = []
    adapter_stop = link.pool.stopTrying
    link.pool.stopTrying = lambda: stops.append(1) or adapter_stop()
    for _ in range(2):
        connection = _handshaking(link)
        connection.connectionLost(Failure(error.ConnectionLost()))
    assert len(stops) == 2
    said = [line for line in logged() if "during its handshake" in line]
    assert len(said) == 1 and "command pool" in said[0] and "Lost connection" in said[0], said
    assert link.pool.deferred is None  # failed, and handled: nothing "Unhandled" below

    usable = _handshaking(link)
    usable.dataReceived(b"+OK\r\n+OK\r\n")  # AUTH, SELECT
    assert link.connections == [usable]
    connection = _handshaking(link)
    connection.dataReceived(b"-WRONGPASS invalid username-password pair\r\n")
    assert connection.transport.disconnecting  # refused: txredisapi closes it
    said = [line for line in logged() if "during its handshake" in line]
    assert len(said) == 2 and "WRONGPASS" in said[1], said
    usable.connectionLost(Failure(error.ConnectionLost()))
    gc.collect()
    assert not [line for line in logged() if "Unhandled" in line]


@pytest.mark.parametrize("url, kind", [
    ("redis://127.0.0.1:6379/0", endpoints.TCP4ClientEndpoint),
    ("redis://[::1]:6379/0", endpoints.TCP6ClientEndpoint),
    ("redis://redis.example:6379/0", endpoints.HostnameEndpoint),
])
def test_only_a_host_name_is_resolved(url, kind):
    """An IP address needs no resolver (HostnameEndpoint resolves even
    "127.0.0.1", in the reactor's thread pool, on every reconnection); with
    TLS the same endpoint is wrapped."""
    from hpxd.backends.redis import _TLSEndpoint, make_endpoint, parse_url
    reactor = MemoryReactorClock()
    assert type(make_endpoint(reactor, parse_url(url), 5)) is kind
    tls = make_endpoint(reactor, parse_url(url.replace("redis:", "rediss:")), 5)
    assert isinstance(tls, _TLSEndpoint) and type(tls.wrapped) is kind

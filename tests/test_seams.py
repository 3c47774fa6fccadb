"""One suite for the core's seams, run against BOTH backends so they cannot drift."""

import pytest
import pytest_twisted
from twisted.internet import task
from zope.interface import implementer
from zope.interface.verify import verifyObject

from hpxd import backends, config
from hpxd.core import errors
from hpxd.core.hub import COMMAND, PUSH
from hpxd.core.interfaces import IHub, IHubClient, IScope, ISessionStore
from tests.support import polled, started_backend, stopped_backend

LIFESPAN = 2


@implementer(IHubClient)
class Client:
    def __init__(self, client_id, session_id=None):
        self.client_id = client_id
        self.session_id = session_id
        self.got = []

    def deliver(self, message):
        self.got.append(message)


def sleep(seconds):
    from twisted.internet import reactor
    return task.deferLater(reactor, seconds, lambda: None)


def start_backend(kind, redis_url=None):
    raw = {"sessions": {"lifespan_seconds": LIFESPAN}, "backend": {"kind": kind}}
    if redis_url:
        raw["backend"]["redis_url"] = redis_url
    return started_backend(raw)


stop_backend = stopped_backend


@pytest.fixture(params=["memory", "redis"])
def kind(request):
    return request.param


@pytest.fixture
def redis_url(kind, request):
    if kind != "redis":
        return None
    return request.getfixturevalue("redis_server").url


@pytest_twisted.async_yield_fixture
async def backend(kind, redis_url):
    b = await start_backend(kind, redis_url)
    yield b
    await stop_backend(b)


async def outcome(d):
    """What ``d`` fires with: its value, or its Failure (consumed)."""
    from twisted.internet.defer import Deferred
    assert isinstance(d, Deferred)
    results = []
    d.addCallbacks(results.append, results.append)
    await d
    return results[0]


@pytest_twisted.ensureDeferred
async def test_seams_return_deferreds(backend):
    """Callers may use .addCallback on every backend, not only await, and
    each Deferred fires with what the interface promises."""
    from twisted.python.failure import Failure
    scope, sessions, hub = backend.scope, backend.sessions, backend.hub
    assert await outcome(scope.set("k", {"n": 1})) is None
    assert await outcome(scope.get("k")) == {"n": 1}
    assert await outcome(scope.delete("k")) is None
    session = await outcome(sessions.create({"user_name": None, "role": "guest"}))
    assert session.user_info == {"user_name": None, "role": "guest"}
    assert (await outcome(sessions.get(session.id))).id == session.id
    assert await outcome(sessions.save(session)) is None
    assert await outcome(sessions.delete(session.id)) is None
    missing = await outcome(sessions.get("nope"))
    assert isinstance(missing, Failure) and missing.check(errors.SessionExpired), missing
    for d in (hub.broadcast("x"), hub.send_to_session("s", "x"), hub.send_to_client("c", "x")):
        assert await outcome(d) is None


def test_backends_provide_the_interfaces(backend):
    assert verifyObject(ISessionStore, backend.sessions)
    assert verifyObject(IScope, backend.scope)
    assert verifyObject(IHub, backend.hub)


@pytest_twisted.ensureDeferred
async def test_session_roundtrip_and_data(backend):
    store = backend.sessions
    session = await store.create({"user_name": "ann", "role": "user"})
    assert len(session.id) >= 22  # >= 128 bits in URL-safe base64
    session.data["n"] = [1, "two"]
    await store.save(session)
    again = await store.get(session.id)
    assert again.user_info == {"user_name": "ann", "role": "user"}
    assert again.data == {"n": [1, "two"]}
    other = await store.create({"user_name": None, "role": "guest"})
    assert other.id != session.id


@pytest_twisted.ensureDeferred
async def test_unknown_session_is_expired_not_guest(backend):
    with pytest.raises(errors.SessionExpired):
        await backend.sessions.get("no-such-session")
    with pytest.raises(errors.SessionExpired):
        await backend.sessions.get("")
    # Ids are client text: odd ones are unknown sessions, never a crash.
    for odd in ("\ud800", "a\r\nFLUSHALL\r\n", "ünïcode-☃", "x" * 10000):
        with pytest.raises(errors.SessionExpired):
            await backend.sessions.get(odd)


@pytest_twisted.ensureDeferred
async def test_get_now_agrees_with_get(backend):
    """get_now answers at once (memory) or declines with None (Redis)."""
    store = backend.sessions
    session = await store.create({"user_name": "ann", "role": "user"})
    now = store.get_now(session.id)
    if now is None:
        assert backend.sessions.__class__.__name__ == "RedisSessionStore"
    else:
        assert (now.id, now.user_info, now.data) == (session.id, session.user_info, {})


@pytest_twisted.ensureDeferred
async def test_sliding_expiry(backend):
    store = backend.sessions
    session = await store.create({"user_name": None, "role": "guest"})
    for _ in range(3):  # each use extends the lifespan past the original end
        await sleep(LIFESPAN * 0.6)
        await store.get(session.id)
    await sleep(LIFESPAN + 1.1)
    with pytest.raises(errors.SessionExpired):
        await store.get(session.id)


@pytest_twisted.ensureDeferred
async def test_deleted_session_is_not_resurrected_by_save(backend):
    store = backend.sessions
    session = await store.create({"user_name": None, "role": "guest"})
    await store.delete(session.id)
    session.data["x"] = 1
    with pytest.raises(errors.SessionExpired):
        await store.save(session)
    with pytest.raises(errors.SessionExpired):
        await store.get(session.id)


@pytest_twisted.ensureDeferred
async def test_session_data_must_be_json(backend):
    session = await backend.sessions.create({"user_name": None, "role": "guest"})
    session.data["bad"] = object()
    with pytest.raises(errors.HpxdError):
        await backend.sessions.save(session)


@pytest_twisted.ensureDeferred
async def test_scope(backend):
    scope = backend.scope
    assert await scope.get("k") is None
    assert await scope.get("k", 5) == 5
    value = {"a": [1, 2]}
    await scope.set("k", value)
    got = await scope.get("k")
    assert got == value and got is not value
    await scope.delete("k")
    assert await scope.get("k") is None
    with pytest.raises(errors.HpxdError):
        await scope.set("k", object())


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("value", [
    5, 0, -7, 2 ** 70, -(2 ** 70), 1.5, -0.25, 1e300, "42", "-1.5", "1e5", "", " 7",
    True, False, None, [1, "2", 3.0], {"n": 1, "s": "1", "nested": {"x": [-1, 2.5]}},
])
async def test_every_json_value_round_trips_through_the_scope(backend, value):
    await backend.scope.set("k", value)
    got = await backend.scope.get("k", "missing")
    assert got == value and type(got) is type(value)


@pytest_twisted.ensureDeferred
async def test_hub_local_delivery(backend):
    hub = backend.hub
    a, b = Client("a", "s1"), Client("b", "s2")
    hub.register(a)
    hub.register(b)
    await hub.broadcast("hello", {"x": 1})
    await hub.send_to_session("s2", "only-b", 2)
    await hub.send_to_client("a", "only-a", 3)
    await hub.broadcast("tick", 4, stream="clock")
    await hub.send_to_session("s2", "for-b", 5, stream="indexer")
    await hub.send_to_client("a", "for-a", 6, stream="p")
    hub.command("serverquit")
    await sleep(0.2)  # a message coming back from Redis must not be delivered twice
    assert [(m.kind, m.action, m.data, m.stream) for m in a.got] == [
        (PUSH, "hello", {"x": 1}, None), (PUSH, "only-a", 3, None), (PUSH, "tick", 4, "clock"),
        (PUSH, "for-a", 6, "p"), (COMMAND, "serverquit", None, None)]
    assert [(m.kind, m.action, m.data, m.stream) for m in b.got] == [
        (PUSH, "hello", {"x": 1}, None), (PUSH, "only-b", 2, None), (PUSH, "tick", 4, "clock"),
        (PUSH, "for-b", 5, "indexer"), (COMMAND, "serverquit", None, None)]
    hub.unregister(a)
    await hub.broadcast("again")
    assert len(a.got) == 5
    hub.unregister(b)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("action, data", [("x", object()), ("x", {"s": {1, 2}}), (5, None)])
async def test_a_push_that_is_not_json_reaches_nobody_and_fails_413(backend, action, data):
    hub = backend.hub
    a = Client("a", "s1")
    hub.register(a)
    try:
        for push in (lambda: hub.broadcast(action, data),
                     lambda: hub.send_to_session("s1", action, data),
                     lambda: hub.send_to_client("a", action, data)):
            with pytest.raises(errors.BadArguments):
                await push()
        await sleep(0.1)
        assert a.got == []
    finally:
        hub.unregister(a)


@pytest_twisted.ensureDeferred
async def test_hub_crosses_nodes_but_commands_do_not(redis_server):
    node_a = await start_backend("redis", redis_server.url)
    node_b = await start_backend("redis", redis_server.url)
    try:
        on_a, on_b = Client("a", "s1"), Client("b", "s1")
        node_a.hub.register(on_a)
        node_b.hub.register(on_b)
        await sleep(0.3)  # both subscribers in place
        await node_a.hub.broadcast("news", [1])
        await node_a.hub.send_to_session("s1", "mine", None)
        await node_a.hub.send_to_client("b", "direct", "x")
        await node_a.hub.broadcast("tick", 1, stream="clock")
        await node_a.hub.send_to_session("s1", "part", 2, stream="indexer")
        await node_a.hub.send_to_client("b", "value", 4, stream="p")
        node_a.hub.command("serverquit")
        await sleep(0.3)
        assert [(m.kind, m.action, m.data, m.stream) for m in on_b.got] == [
            (PUSH, "news", [1], None), (PUSH, "mine", None, None), (PUSH, "direct", "x", None),
            (PUSH, "tick", 1, "clock"), (PUSH, "part", 2, "indexer"),
            (PUSH, "value", 4, "p")]
        assert [m.action for m in on_a.got] == ["news", "mine", "tick", "part", "serverquit"]
        node_a.hub.unregister(on_a)
        node_b.hub.unregister(on_b)
    finally:
        await stop_backend(node_a)
        await stop_backend(node_b)


@pytest_twisted.ensureDeferred
async def test_redis_down_fails_fast_and_recovers(redis_server):
    from twisted.logger import formatEvent, globalLogPublisher
    events = []  # everything logged meanwhile, for the message if recovery does not come
    observer = events.append
    globalLogPublisher.addObserver(observer)
    node = await start_backend("redis", redis_server.url)
    try:
        session = await node.sessions.create({"user_name": None, "role": "guest"})
        redis_server.stop()
        await sleep(0.3)
        from twisted.internet import reactor
        started = reactor.seconds()
        with pytest.raises(errors.BackendUnavailable):
            await node.sessions.get(session.id)
        with pytest.raises(errors.BackendUnavailable):
            await node.scope.get("k")
        assert reactor.seconds() - started < 1.0
        redis_server.start()
        # The pool reconnects by itself, within RETRY_MAX (2 s) of Redis
        # returning, even when Redis died during a connection's handshake
        # (this test's old flakiness; test_redis_recovery.py makes it happen).
        for _ in range(200):
            await sleep(0.1)
            try:
                fresh = await node.sessions.create({"user_name": None, "role": "guest"})
                break
            except errors.BackendUnavailable:
                continue
        else:
            link = node.services[0]
            logged = "\n".join(formatEvent(e) for e in events[-30:])
            pytest.fail(f"no Redis connection within 20 s of Redis returning: link up "
                        f"{link.up}, {len(link.connections)} pooled connections; "
                        f"logged meanwhile:\n{logged}")
        assert node.services[0].up
        assert (await node.sessions.get(fresh.id)).id == fresh.id
    finally:
        globalLogPublisher.removeObserver(observer)
        await stop_backend(node)


@pytest_twisted.ensureDeferred
async def test_a_hung_redis_times_out_and_recovers(redis_server):
    """Redis stops answering (SIGSTOP): calls fail with 504 within the reply
    timeout instead of hanging, and work again once it answers (SIGCONT)."""
    import signal
    from twisted.internet import reactor
    raw = {"backend": {"kind": "redis", "redis_url": redis_server.url,
                       "redis_reply_timeout": 1}}
    node = backends.build(config.from_dict(raw), reactor)
    for service in node.services:
        service.startService()
    await node.ready()
    try:
        session = await node.sessions.create({"user_name": None, "role": "guest"})
        redis_server.proc.send_signal(signal.SIGSTOP)
        started = reactor.seconds()
        with pytest.raises(errors.BackendUnavailable):
            await node.sessions.get(session.id)
        assert reactor.seconds() - started < 3
        redis_server.proc.send_signal(signal.SIGCONT)
        for _ in range(100):
            await sleep(0.1)
            try:
                assert (await node.sessions.get(session.id)).id == session.id
                break
            except errors.BackendUnavailable:
                continue
        else:
            pytest.fail("the node did not recover after Redis answered again")
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
        for service in node.services:
            await service.stopService()


@pytest_twisted.ensureDeferred
async def test_session_keys_holding_garbage_give_a_clear_error(redis_server):
    """A session key overwritten by something else (not our JSON, or not a
    string at all): that call fails with 100, logged; other sessions work."""
    node = await start_backend("redis", redis_server.url)
    try:
        link = node.services[0]
        await link.run("set", "hpxd:session:garbage", "not json")
        await link.run("execute_command", "RPUSH", "hpxd:session:a-list", "x")
        for session_id in ("garbage", "a-list"):
            with pytest.raises(errors.UnhandledError):
                await node.sessions.get(session_id)
        fine = await node.sessions.create({"user_name": None, "role": "guest"})
        assert (await node.sessions.get(fine.id)).id == fine.id
    finally:
        await stop_backend(node)


@pytest_twisted.ensureDeferred
async def test_redis_replies_reach_their_commands_when_mixed_in_one_turn(redis_server):
    """Session reads and other commands sent in one reactor turn go out on one
    connection and their replies come back together: each gets its own."""
    from twisted.internet import defer
    node = await start_backend("redis", redis_server.url)
    try:
        link = node.services[0]
        ann = await node.sessions.create({"user_name": "ännä ☃", "role": "user"})
        await link.run("set", "hpxd:test:number", "42")
        results = await defer.DeferredList([
            node.sessions.get(ann.id),
            link.run("get", "hpxd:test:number"),
            node.sessions.get("gone"),
            link.run("incr", "hpxd:test:counter"),
            node.sessions.get(ann.id),
        ], consumeErrors=True)
        first, number, gone, counter, again = results
        assert first[1].user_info == again[1].user_info == {"user_name": "ännä ☃", "role": "user"}
        # Bulk strings come back as the text Redis holds (no number guessing:
        # JSON must reach json.loads as text); INCR's reply is an integer.
        assert (number, counter) == ((True, "42"), (True, 1))
        assert not gone[0] and gone[1].check(errors.SessionExpired)
    finally:
        await stop_backend(node)


@pytest_twisted.ensureDeferred
async def test_session_reads_of_one_turn_share_one_command_and_keep_their_own_outcome(
        redis_server):
    """Every session read in one reactor turn goes out as one command; a key
    that is gone, not our JSON or not a string fails only its own read."""
    from twisted.internet import defer
    node = await start_backend("redis", redis_server.url)
    try:
        link = node.services[0]
        sent = []
        real_run = link.run
        link.run = lambda command, *args, **kw: sent.append(args[:1]) or real_run(command, *args,
                                                                                 **kw)
        ann = await node.sessions.create({"user_name": "ann", "role": "user"})
        await link.run("set", "hpxd:session:garbage", "not json")
        await link.run("execute_command", "RPUSH", "hpxd:session:a-list", "x")
        del sent[:]
        outcomes = await defer.DeferredList(
            [node.sessions.get(sid) for sid in (ann.id, "gone", "garbage", "a-list", ann.id)],
            consumeErrors=True)
        assert sent == [(b"EVAL",)]
        live, gone, garbage, a_list, again = outcomes
        assert live[1].user_info == again[1].user_info == {"user_name": "ann", "role": "user"}
        assert gone[1].check(errors.SessionExpired)
        assert garbage[1].check(errors.UnhandledError) and a_list[1].check(errors.UnhandledError)
        ttl = await link.run("ttl", "hpxd:session:" + ann.id)
        assert LIFESPAN - 1 <= ttl <= LIFESPAN  # the read slid the expiry
    finally:
        link.run = real_run
        await stop_backend(node)


# -- leases (ILeases) -------------------------------------------------------------

def test_leases_provide_the_interface(backend):
    from hpxd.core.interfaces import ILeases
    assert verifyObject(ILeases, backend.leases)


@pytest_twisted.ensureDeferred
async def test_a_lease_has_one_holder_at_a_time(backend):
    leases = backend.leases
    assert await leases.acquire("process:clock", "node-a", 5, {"node": "a"}) is True
    assert await leases.acquire("process:clock", "node-b", 5, {"node": "b"}) is False
    assert await leases.lookup("process:clock") == {"node": "a"}
    # the holder may take it again: the value and time are renewed
    assert await leases.acquire("process:clock", "node-a", 5, {"node": "a", "n": 2}) is True
    assert await leases.lookup("process:clock") == {"node": "a", "n": 2}
    # only the holder frees it
    await leases.release("process:clock", "node-b")
    assert await leases.lookup("process:clock") == {"node": "a", "n": 2}
    await leases.release("process:clock", "node-a")
    assert await leases.lookup("process:clock") is None
    assert await leases.acquire("process:clock", "node-b", 5) is True


@pytest_twisted.ensureDeferred
async def test_a_lease_not_renewed_frees_itself_and_renewal_keeps_it(backend):
    leases = backend.leases
    assert await leases.acquire("kept", "a", 0.4, 1)
    assert await leases.acquire("dropped", "a", 0.4, 2)
    for _ in range(3):
        await sleep(0.2)
        assert await leases.renew([("kept", "a"), ("not-mine", "a")], 0.4) == [("not-mine", "a")]
    assert await leases.lookup("kept") == 1
    assert await leases.lookup("dropped") is None
    assert await leases.renew([("dropped", "a")], 0.4) == [("dropped", "a")]
    assert await leases.acquire("dropped", "b", 1) is True
    assert await leases.renew([], 1) == []


@pytest_twisted.ensureDeferred
async def test_a_lease_value_must_be_json(backend):
    failure = await outcome(backend.leases.acquire("x", "a", 1, object()))
    assert failure.check(errors.BadArguments)
    assert await backend.leases.lookup("x") is None


@pytest_twisted.ensureDeferred
async def test_take_forces_a_lease_over_from_its_holder(backend):
    leases = backend.leases
    assert await leases.take("record", "a", 5, {"by": "a"}) is None  # it was free
    assert await leases.take("record", "b", 5, {"by": "b"}) == "a"
    assert await leases.lookup("record") == {"by": "b"}
    assert await leases.acquire("record", "a", 5) is False  # b holds it now
    assert await leases.renew([("record", "a"), ("record", "b")], 5) == [("record", "a")]
    assert await leases.take("record", "b", 5, {"by": "b", "n": 2}) == "b"
    assert await leases.lookup("record") == {"by": "b", "n": 2}
    await leases.release("record", "b")
    assert await leases.lookup("record") is None


@pytest_twisted.ensureDeferred
async def test_a_taken_lease_frees_itself_after_its_ttl(backend):
    leases = backend.leases
    assert await leases.acquire("short", "a", 5) is True
    assert await leases.take("short", "b", 0.2, 1) == "a"
    assert await leases.lookup("short") == 1
    await polled(lambda: leases.lookup("short"), None)
    assert await leases.acquire("short", "a", 1) is True


@pytest_twisted.ensureDeferred
async def test_a_taken_lease_value_must_be_json(backend):
    assert await backend.leases.acquire("y", "a", 5, 1) is True
    failure = await outcome(backend.leases.take("y", "b", 1, object()))
    assert failure.check(errors.BadArguments)
    assert await backend.leases.lookup("y") == 1

"""hpxd/core/sips.py: SIPs bound to a session, on BOTH backends (memory, and
a private real Redis), across two nodes sharing one Redis, and dropped or
refused once their session ends (the login's session-end hook)."""

import pytest
import pytest_twisted
from twisted.internet import task

from hpxd.backends.memory import MemoryLeases, MemorySessionStore
from hpxd.core import errors
from hpxd.core.auth import Authenticator, Role
from hpxd.core.login import Login
from hpxd.core.sips import Sip, SipStore, name
from tests.support import polled, started_backend, stopped_backend

GUEST = {"user_name": None, "role": "guest"}
PEER = "10.0.0.1:1234"


@pytest_twisted.async_yield_fixture
async def node(backend):
    """A started backend of the ``backend`` kind (conftest)."""
    started = await started_backend({"backend": backend})
    yield started
    await stopped_backend(started)


@pytest.fixture
def sips(node):
    return SipStore(node.leases, node.sessions, ttl=60)


async def failure_of(d):
    failures = []
    d.addErrback(failures.append)
    await d
    assert failures, "it did not fail"
    return failures[0]


def login_on(sessions, sips, clock):
    auth = Authenticator({"guest": Role("guest")}, {}, True, "guest", 0, clock)
    return Login(auth, sessions, on_session_end=[sips.session_ended])


@pytest_twisted.ensureDeferred
async def test_a_sip_resolves_to_its_form_record_and_parameters(node, sips):
    session = await node.sessions.create(GUEST)
    token = await sips.issue(session.id, "contact", 7, {"mode": "edit", "n": [1, 2]})
    other = await sips.issue(session.id, "contact", 7)
    assert token != other and len(token) == 32  # 192 random bits, URL-safe
    assert await sips.resolve(token, session.id, "7") == Sip(
        token, session.id, "contact", 7, {"mode": "edit", "n": [1, 2]})
    assert (await sips.resolve(other, session.id)).params == {}  # no r sent: not compared
    new = await sips.issue(session.id, "contact")  # a new record: no id
    assert (await sips.resolve(new, session.id)).record_id is None


@pytest_twisted.ensureDeferred
async def test_a_sip_of_another_session_is_refused(node, sips):
    mine, theirs = await node.sessions.create(GUEST), await node.sessions.create(GUEST)
    token = await sips.issue(theirs.id, "contact", 7)
    failure = await failure_of(sips.resolve(token, mine.id, 7))
    assert failure.check(errors.PermissionDenied)
    assert "another session" in failure.value.msg
    assert (await sips.resolve(token, theirs.id, 7)).form == "contact"  # still theirs


@pytest_twisted.ensureDeferred
async def test_an_unknown_sip_is_refused_and_a_malformed_one_is_bad_arguments(node, sips):
    session = await node.sessions.create(GUEST)
    token = await sips.issue(session.id, "contact", 7)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert (await failure_of(sips.resolve(forged, session.id))).check(errors.PermissionDenied)
    for bad in (None, "", "abc", 12, token + "x", token[:-1] + "/"):
        assert (await failure_of(sips.resolve(bad, session.id))).check(errors.BadArguments)


@pytest_twisted.ensureDeferred
async def test_a_changed_record_id_next_to_the_sip_is_refused(node, sips):
    session = await node.sessions.create(GUEST)
    token = await sips.issue(session.id, "contact", 7)
    failure = await failure_of(sips.resolve(token, session.id, "8"))
    assert failure.check(errors.PermissionDenied)
    assert "record id" in failure.value.msg
    new = await sips.issue(session.id, "contact")  # a new record's SIP names none
    assert (await failure_of(sips.resolve(new, session.id, 8))).check(errors.PermissionDenied)
    assert (await sips.resolve(token, session.id, 7)).record_id == 7


@pytest_twisted.ensureDeferred
async def test_a_sip_expires_ttl_seconds_after_its_last_use(backend, node):
    """Memory: a fake clock; Redis: a short real TTL, polled."""
    if backend["kind"] == "memory":
        clock = task.Clock()
        sessions = MemorySessionStore(1000, clock=clock)
        sips = SipStore(MemoryLeases(clock), sessions, ttl=10)
        session = await sessions.create(GUEST)
        token = await sips.issue(session.id, "contact", 1)
        clock.advance(8)
        await sips.resolve(token, session.id, 1)  # a use: 10 s more
        clock.advance(8)
        await sips.resolve(token, session.id, 1)
        clock.advance(11)
        failure = await failure_of(sips.resolve(token, session.id, 1))
        assert failure.check(errors.PermissionDenied)
        assert "expired" in failure.value.msg
        return
    sips = SipStore(node.leases, node.sessions, ttl=0.3)
    session = await node.sessions.create(GUEST)
    token = await sips.issue(session.id, "contact", 1)
    assert (await sips.resolve(token, session.id, 1)).record_id == 1
    await polled(lambda: node.leases.lookup(name(token)), None)
    assert (await failure_of(sips.resolve(token, session.id, 1))).check(errors.PermissionDenied)


@pytest_twisted.ensureDeferred
async def test_a_logged_out_sessions_sips_are_dropped_and_refused(node, sips, reactor):
    login = login_on(node.sessions, sips, reactor)
    session = await login.guest(PEER)
    token = await sips.issue(session.id, "contact", 3)
    await login.logout(session, PEER)
    assert await node.leases.lookup(name(token)) is None  # dropped by the session-end hook
    assert (await failure_of(sips.resolve(token, session.id, 3))).check(errors.PermissionDenied)


@pytest_twisted.ensureDeferred
async def test_an_expired_sessions_sips_are_refused_and_dropped():
    clock = task.Clock()
    sessions, leases = MemorySessionStore(10, clock=clock), MemoryLeases(clock)
    sips = SipStore(leases, sessions, ttl=1000)
    session = await sessions.create(GUEST)
    token = await sips.issue(session.id, "contact", 3)
    clock.advance(11)  # the session expires; nothing runs then
    assert (await failure_of(sips.resolve(token, session.id, 3))).check(errors.SessionExpired)
    assert await leases.lookup(name(token)) is None


@pytest_twisted.ensureDeferred
async def test_a_failing_session_end_callback_does_not_fail_the_logout(node, sips, reactor):
    login = login_on(node.sessions, sips, reactor)
    ended = []

    def broken(session_id):
        raise RuntimeError("boom")

    login.on_session_end[:0] = [broken]
    login.on_session_end.append(ended.append)
    session = await login.guest(PEER)
    await login.logout(session, PEER)
    assert ended == [session.id]


@pytest.mark.parametrize("args", [
    (None, "contact", 1, None),  # no session
    ("s", "", 1, None),  # no form
    ("s", "contact", True, None),
    ("s", "contact", [1], None),
    ("s", "contact", 1, ["not", "a", "dict"]),
    ("s", "contact", 1, {"x": object()}),  # not JSON
])
@pytest_twisted.ensureDeferred
async def test_issuing_with_bad_arguments_fails_413(sips, args):
    assert (await failure_of(sips.issue(*args))).check(errors.BadArguments)


@pytest_twisted.ensureDeferred
async def test_a_sip_issued_on_one_node_works_on_another_until_logout_there(redis_server,
                                                                            reactor):
    raw = {"backend": {"kind": "redis", "redis_url": redis_server.url}}
    node_a, node_b = await started_backend(raw), await started_backend(raw)
    try:
        on_a = SipStore(node_a.leases, node_a.sessions, ttl=60)
        on_b = SipStore(node_b.leases, node_b.sessions, ttl=60)
        session = await node_a.sessions.create(GUEST)
        other = await node_b.sessions.create(GUEST)
        token = await on_a.issue(session.id, "contact", 5, {"k": "v"})
        assert (await on_b.resolve(token, session.id, 5)).params == {"k": "v"}
        assert (await failure_of(on_b.resolve(token, other.id, 5))).check(
            errors.PermissionDenied)
        assert (await failure_of(on_b.resolve(token, session.id, 6))).check(
            errors.PermissionDenied)
        # Logged out through B, which did not issue it: refused on A and B.
        await login_on(node_b.sessions, on_b, reactor).logout(session, PEER)
        assert (await failure_of(on_a.resolve(token, session.id, 5))).check(
            errors.SessionExpired)
        assert await node_a.leases.lookup(name(token)) is None  # dropped by that refusal
        assert (await failure_of(on_b.resolve(token, session.id, 5))).check(
            errors.PermissionDenied)
    finally:
        await stopped_backend(node_a)
        await stopped_backend(node_b)


@pytest_twisted.ensureDeferred
async def test_a_node_has_sips_and_record_locks_and_its_logout_drops_the_sips(tmp_path, backend):
    from hpxd.core.app import Task
    from hpxd.core.record_locks import EXCLUSIVE, SUCCESS
    from tests.support import start_service
    raw = {"server": {"name": "forms", "data_dir": str(tmp_path / "forms"),
                      "shutdown_timeout": 2},
           "tcp": {"listen": ["tcp:0:interface=127.0.0.1"]}, "backend": backend}
    service = await start_service(raw, Task("forms"))
    try:
        node = service.node
        assert node.record_locks.timeout == 900
        session = await node.login.guest(PEER)
        lock = await node.record_locks.lock("contact", 1, session.id, EXCLUSIVE)
        assert lock.status == SUCCESS
        token = await node.sips.issue(session.id, "contact", 1)
        assert (await node.sips.resolve(token, session.id, 1)).form == "contact"
        node.reconfigure(node.auth)  # a reload keeps the session-end hook
        await node.login.logout(session, PEER)
        assert await node.sips.leases.lookup(name(token)) is None
        assert (await failure_of(node.sips.resolve(token, session.id, 1))).check(
            errors.PermissionDenied)
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_session_holds_at_most_so_many_sips_on_a_node_the_oldest_go(node, sips,
                                                                           monkeypatch):
    monkeypatch.setattr("hpxd.core.sips.MAX_SIPS_INDEXED", 3)
    session = await node.sessions.create(GUEST)
    tokens = [await sips.issue(session.id, "contact") for _ in range(5)]
    for gone in tokens[:2]:
        assert (await failure_of(sips.resolve(gone, session.id))).check(errors.PermissionDenied)
        assert await node.leases.lookup(name(gone)) is None
    for kept in tokens[2:]:
        assert (await sips.resolve(kept, session.id)).token == kept

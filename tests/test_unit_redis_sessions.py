"""The Redis backend without a Redis: the session store's reply handling, the
link's reply watchdog, and the txredisapi hooks they rely on (test_seams.py
runs the same code against a real Redis)."""

import pytest
import pytest_twisted
import txredisapi
from twisted.internet import error, task
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from hpxd.backends import redis as redis_backend
from hpxd.backends.redis import RedisLink, RedisSessionStore
from hpxd.core import errors

GUEST_TEXT = '{"user_info": {"user_name": null, "role": "guest"}, "data": {}}'


def test_missing_session_is_expired():
    with pytest.raises(errors.SessionExpired):
        RedisSessionStore(None, 60)._loaded(None, "gone")


@pytest.mark.parametrize("odd", ["", "\ud800", None, 12])
def test_ids_that_cannot_be_keys_are_expired_without_asking_redis(odd):
    failures = []
    RedisSessionStore(None, 60).get(odd).addErrback(failures.append)  # link None: never used
    assert failures[0].check(errors.SessionExpired)


def test_sessions_parsed_from_the_same_text_are_independent_copies():
    store = RedisSessionStore(None, 60)
    first = store._loaded(GUEST_TEXT, "a")
    first.user_info["role"] = "admin"
    first.data["x"] = 1
    second = store._loaded(GUEST_TEXT, "b")
    assert (second.id, second.user_info, second.data) == (
        "b", {"user_name": None, "role": "guest"}, {})


def test_sessions_with_data_are_parsed_every_time(monkeypatch):
    monkeypatch.setattr(redis_backend, "MAX_REMEMBERED_TEXTS", 2)
    store = RedisSessionStore(None, 60)
    text = '{"user_info": {"user_name": "ann", "role": "user"}, "data": {"n": [1]}}'
    store._loaded(text, "a").data["n"].append(2)
    assert store._loaded(text, "a").data == {"n": [1]}
    for role in ("a", "b", "c"):  # the memory of parsed texts stays bounded
        store._loaded(GUEST_TEXT.replace("guest", role), "s")
    assert len(store._user_infos) <= 2


def test_our_connection_bookkeeping_attributes_are_ours_alone():
    """(The txredisapi adapter itself is checked in test_redis_recovery.py.)"""
    theirs = set(dir(txredisapi.RedisProtocol)) | set(vars(txredisapi.RedisProtocol()))
    assert not {"outstanding", "last_progress"} & theirs


def _link(reply_timeout=1):
    return RedisLink("redis://localhost:1/0", 1, 1, reply_timeout, MemoryReactorClock())


async def _connect(link):
    """A pooled connection over a StringTransport, made the way txredisapi
    makes them."""
    from twisted.internet import reactor
    connection = link.pool.buildProtocol(None)
    connection.makeConnection(StringTransport())
    connection.dataReceived(b"+OK\r\n")  # the reply to SELECT 0
    # txredisapi adds it to its own pool a turn later (a delayed call).
    await task.deferLater(reactor, 0, lambda: None)
    return connection


def _lose(connection):
    connection.connectionLost(Failure(error.ConnectionAborted()))


@pytest_twisted.ensureDeferred
async def test_txredisapi_calls_our_pool_hooks():
    link = _link()
    connection = await _connect(link)
    assert link.connections == [connection] and link.up is True
    _lose(connection)
    assert link.connections == [] and link.up is False


@pytest_twisted.ensureDeferred
async def test_overdue_replies_drop_the_connection_and_fail_with_504():
    link = _link(reply_timeout=1)
    connection = await _connect(link)
    clock, transport = link.reactor, connection.transport
    transport.clear()
    first = link.run("get", "k")
    second = link.run("execute_command", "GETEX", b"k2", "EX", 5)
    assert transport.value() == (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
                                 b"*4\r\n$5\r\nGETEX\r\n$2\r\nk2\r\n$2\r\nEX\r\n$1\r\n5\r\n")
    clock.advance(0.6)
    connection.dataReceived(b"$1\r\na\r\n")
    assert first.result == "a"
    clock.advance(0.6)  # 1.2 s since the commands went out, 0.6 s since a reply
    link._watch()
    assert not transport.disconnecting
    clock.advance(0.5)
    link._watch()
    assert transport.disconnecting  # aborted
    _lose(connection)  # what the reactor then does
    failures = []
    second.addErrback(failures.append)
    assert failures[0].check(errors.BackendUnavailable) and link.up is False
    assert connection.outstanding == 0


@pytest_twisted.ensureDeferred
async def test_an_idle_connection_is_never_dropped():
    link = _link(reply_timeout=1)
    connection = await _connect(link)
    d = link.run("set", "k", "v")
    connection.dataReceived(b"+OK\r\n")
    assert d.result == "OK" and connection.outstanding == 0
    link.reactor.advance(60)
    link._watch()
    assert not connection.transport.disconnecting
    _lose(connection)


@pytest_twisted.ensureDeferred
async def test_a_reply_marks_redis_reachable_again():
    """Marked down by a command that failed on one connection, the link is
    up again with the next reply on a connection that stayed live (no new
    connection is made that would say so)."""
    link = _link()
    connection = await _connect(link)
    link.mark(False, "a command failed on another connection")
    d = link.run("get", "k")
    connection.dataReceived(b"$1\r\na\r\n")
    assert d.result == "a"
    assert link.up is True

"""hpxd/doors/tcp.py at the protocol level: StringTransport and a fake Clock."""

import gzip
import json
import os
import time
import zlib
from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

import hpxd
from tests.support import wait_until
from hpxd.backends.memory import MemoryHub, MemoryScope, MemorySessionStore
from hpxd.core import errors
from hpxd.core.app import Task
from hpxd.core.auth import Authenticator, Role, User
from hpxd.core.passwords import hash_password
from hpxd.core.hub import COMMAND, HubMessage
from hpxd.core.node import Node
from hpxd.doors import tcp
from hpxd.doors.tcp import EOF_MARK, MAX_QUEUED, HpxFactory, decode, encode, inflate

LIMIT = 64 * 1024
GZIP_START = b"\x1f\x8b"
HASH = hash_password("right", log2_n=10)
USERS = {"alice": User("alice", HASH, "admin")}
ROLES = {
    "guest": Role("guest", privileges={"*": frozenset({"view"})}),
    "admin": Role("admin", admin=True, server_commands=True),
}


def frame(obj):
    return gzip.compress(json.dumps(obj).encode()) + EOF_MARK


def envelope(data, session=""):
    return {"session": session, "name": "client", "data": data}


def make_task(pending):
    task = Task("app")

    @task.function
    def add(item, a, b):
        return a + b

    @task.function
    def block(item):
        d = defer.Deferred()
        pending.append(d)
        return d

    @task.function
    def boom(item):
        raise RuntimeError("internal detail")

    @task.function
    def not_json(item):
        return {1, 2}

    @task.function(requires="edit")
    def edit(item):
        return "edited"

    @task.function
    def tally(item, n):
        pending.append(("tally", n))  # every call that ran, in order
        return n

    return task


class Conn:
    """One HpxProtocol on a StringTransport, everything on one fake clock."""

    def __init__(self, guest_allowed=True, max_message_bytes=LIMIT, handshake_timeout=30,
                 idle_timeout=900, node=None, clock=None):
        self.clock = clock or Clock()
        self.pending = []
        if node is None:
            auth = Authenticator(ROLES, USERS, guest_allowed, "guest", 1.0, self.clock)
            node = Node("unit-node", make_task(self.pending), auth,
                        MemorySessionStore(60, clock=self.clock), MemoryScope(), MemoryHub())
        self.node = node
        self.config = SimpleNamespace(listen=[], max_message_bytes=max_message_bytes,
                                      handshake_timeout=handshake_timeout,
                                      idle_timeout=idle_timeout,
                                      max_queued_bytes=4 * 1024 * 1024)
        self.factory = HpxFactory(node, self.config, self.clock)
        self.proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.proto.callLater = self.clock.callLater  # TimeoutMixin: no real timers
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "10.1.2.3", 5555))
        self._seen = 0
        self.proto.makeConnection(self.transport)

    def replies(self):
        """Every message written since the last call, decoded."""
        raw = self.transport.value()[self._seen:]
        self._seen += len(raw)
        assert raw == b"" or raw.endswith(EOF_MARK), "a reply was written in pieces"
        return [json.loads(gzip.decompress(part)) for part in raw.split(EOF_MARK)[:-1]]

    def send(self, data, session=""):
        self.proto.dataReceived(frame(envelope(data, session)))

    def ask(self, data, session=""):
        self.send(data, session)
        [reply] = self.replies()
        return reply

    def handshake(self):
        self.replies()  # the greeting
        reply = self.ask({})
        assert reply["data"] == "Authenticated"
        return reply["session"]

    @property
    def closed(self):
        return self.transport.disconnecting

    def lose(self):
        if self.proto.connected:
            self.proto.connected = 0
            self.proto.connectionLost(Failure(ConnectionDone()))


@pytest.fixture
def conn():
    c = Conn()
    yield c
    c.lose()


# -- inflate --------------------------------------------------------------------

@pytest.fixture(scope="module")
def bomb():
    """100 MB of zeros, gzip-compressed to about 100 KB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    parts = [compressor.compress(zeros) for _ in range(100)]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture
def counted(monkeypatch):
    """Record how many bytes inflate() gets out of zlib."""
    produced = []

    class Inflater:
        def __init__(self, wbits):
            self._real = zlib.decompressobj(wbits)

        def decompress(self, data, max_length=0):
            out = self._real.decompress(data, max_length)
            produced.append(len(out))
            return out

        eof = property(lambda self: self._real.eof)
        unused_data = property(lambda self: self._real.unused_data)

    fake = SimpleNamespace(decompressobj=Inflater, error=zlib.error, MAX_WBITS=zlib.MAX_WBITS)
    monkeypatch.setattr(tcp, "zlib", fake)
    return produced


def test_inflate_roundtrip():
    raw = json.dumps({"x": "y" * 1000}).encode()
    assert inflate(gzip.compress(raw), LIMIT) == raw


def test_inflate_exactly_at_the_limit():
    raw = b"a" * LIMIT
    assert inflate(gzip.compress(raw), LIMIT) == raw
    with pytest.raises(errors.ParsingError) as info:
        inflate(gzip.compress(raw + b"a"), LIMIT)
    assert info.value.code == 410


def test_gzip_bomb_refused_quickly_and_cheaply(bomb, counted):
    assert len(bomb) < 1024 * 1024
    start = time.monotonic()
    with pytest.raises(errors.ParsingError) as info:
        inflate(bomb, 1024 * 1024)
    assert time.monotonic() - start < 1.0
    assert info.value.code == 410
    assert "more than" in info.value.msg
    assert sum(counted) <= 1024 * 1024 + 1


def test_multi_member_gzip():
    frame_ = gzip.compress(b'{"a": ') + gzip.compress(b"1}")
    assert inflate(frame_, LIMIT) == b'{"a": 1}'


def test_repeated_member_is_read_twice_not_once():
    # Every member counts, even one identical to the first (its trailer then
    # matches what the first member gave).
    member = gzip.compress(b'{"a": 1}')
    assert inflate(member * 2, LIMIT) == b'{"a": 1}{"a": 1}'


def test_bytes_after_the_last_member_are_refused():
    with pytest.raises(errors.ParsingError) as info:
        inflate(gzip.compress(b'{"a": 1}') + b"junk", LIMIT)
    assert info.value.code == 410


def test_multi_member_gzip_counts_every_member(counted):
    member = gzip.compress(b"x" * (LIMIT // 2))
    assert len(inflate(member * 2, LIMIT)) == LIMIT
    counted.clear()
    with pytest.raises(errors.ParsingError):
        inflate(member * 3, LIMIT)
    assert sum(counted) <= LIMIT + 1
    with pytest.raises(errors.ParsingError):
        inflate(member * 2 + gzip.compress(b"y"), LIMIT)


def test_truncated_gzip():
    whole = gzip.compress(b"hello world" * 100)
    for cut in (1, 8, len(whole) // 2):
        with pytest.raises(errors.ParsingError):
            inflate(whole[:-cut], LIMIT)


@pytest.mark.parametrize("data", [b"not gzip at all", b"\x1f\x8b\x08garbage",
                                  zlib.compress(b"zlib, not gzip")])
def test_bad_gzip(data):
    with pytest.raises(errors.ParsingError):
        inflate(data, LIMIT)


def test_trailing_garbage_after_a_member():
    with pytest.raises(errors.ParsingError):
        inflate(gzip.compress(b"{}") + b"junk", LIMIT)


def test_empty_frame():
    with pytest.raises(errors.ParsingError) as info:
        inflate(b"", LIMIT)
    assert info.value.code == 410


@pytest.mark.parametrize("raw, error", [
    (b"\xff\xfe", errors.ParsingError),
    (b"{not json", errors.JSONParseError),
    (b"[1, 2]", errors.InvalidMessage),
    (b'{"session": "", "name": "x"}', errors.InvalidMessage),
    (b'{"session": "", "data": 1, "extra": 1}', errors.InvalidMessage),
    (b'{"session": 5, "data": 1}', errors.InvalidMessage),
    (b'{"name": [], "data": 1}', errors.InvalidMessage),
])
def test_decode_errors(raw, error):
    with pytest.raises(error):
        decode(gzip.compress(raw), LIMIT)


def test_encode_is_gzip_json_eof():
    data = encode({"a": [1, "é"]})
    assert data.endswith(EOF_MARK) and data.count(EOF_MARK) == 1
    assert json.loads(gzip.decompress(data[:-len(EOF_MARK)])) == {"a": [1, "é"]}


# -- connection ----------------------------------------------------------------

def test_greeting_on_connect(conn):
    [greeting] = conn.replies()
    assert greeting == {"session": "", "name": "unit-node", "data": {
        "version": {"core": list(hpxd.VERSION), "db": [0, 0, 0], "torrent": [0, 0, 0]},
        "guest_allowed": True}}
    assert conn.proto in conn.factory.connections
    assert conn.proto.conn in conn.node.hub.clients()
    assert conn.proto.peer == "10.1.2.3:5555"


def test_greeting_says_when_guests_are_off():
    c = Conn(guest_allowed=False)
    [greeting] = c.replies()
    assert greeting["data"]["guest_allowed"] is False
    reply = c.ask({})
    assert reply["error"]["code"] == 407
    assert reply["data"] == {}
    c.lose()


def test_guest_handshake_and_call(conn):
    session = conn.handshake()
    assert len(session) >= 22
    assert conn.proto.conn.session_id == session
    reply = conn.ask([{"fname": "add", "a": 1, "b": 2}], session)
    assert reply == {"session": session, "name": "unit-node",
                     "data": [{"fname": "add", "data": 3}]}


def test_two_messages_in_one_read_two_replies_in_order(conn):
    session = conn.handshake()
    conn.proto.dataReceived(frame(envelope([{"fname": "add", "a": 1, "b": 2}], session))
                            + frame(envelope([{"fname": "add", "a": 10, "b": 20}], session)))
    first, second = conn.replies()
    assert first["data"] == [{"fname": "add", "data": 3}]
    assert second["data"] == [{"fname": "add", "data": 30}]


def test_many_pipelined_messages(conn):
    session = conn.handshake()
    conn.proto.dataReceived(b"".join(
        frame(envelope([{"fname": "add", "a": i, "b": 0}], session)) for i in range(40)))
    assert [r["data"][0]["data"] for r in conn.replies()] == list(range(40))
    assert conn.transport.producerState == "producing"


def test_message_split_byte_by_byte(conn):
    session = conn.handshake()
    data = (frame(envelope([{"fname": "add", "a": 2, "b": 3}], session))
            + frame(envelope([{"fname": "add", "a": 4, "b": 5}], session)))
    for i in range(len(data)):
        conn.proto.dataReceived(data[i:i + 1])
        if i == len(data) // 2:
            assert len(conn.replies()) == 1  # the first is answered as soon as it is whole
    assert [r["data"] for r in conn.replies()] == [[{"fname": "add", "data": 9}]]


def test_eof_mark_split_across_reads(conn):
    session = conn.handshake()
    data = frame(envelope([{"fname": "add", "a": 1, "b": 1}], session))
    conn.proto.dataReceived(data[:-3])
    assert conn.replies() == []
    conn.proto.dataReceived(data[-3:])
    assert conn.replies()[0]["data"][0]["data"] == 2


def test_calls_answered_in_order_with_errors_on_failed_entries(conn):
    session = conn.handshake()
    reply = conn.ask([
        {"fname": "add", "a": 1, "b": 2},
        {"fname": "nope"},
        {"fname": "add", "a": 1},
        {"fname": "boom"},
        {"fname": "edit"},
        {"fname": "not_json"},
        {"no": "fname"},
        "junk",
        {"fname": "add", "a": 5, "b": 5},
    ], session)
    entries = reply["data"]
    assert "error" not in reply
    assert [e["fname"] for e in entries] == ["add", "nope", "add", "boom", "edit", "not_json",
                                             None, None, "add"]
    assert entries[0] == {"fname": "add", "data": 3}
    assert [e.get("error", {}).get("code") for e in entries] == [
        None, 404, 413, 100, 406, 100, 403, 403, None]
    assert entries[3]["error"]["msg"] == errors.UnhandledError.title
    assert "internal detail" not in json.dumps(reply)
    assert entries[8] == {"fname": "add", "data": 10}


@pytest.mark.parametrize("payload, code", [
    (b"not gzip" + EOF_MARK, 410),
    (EOF_MARK, 410),
    (gzip.compress(b"{nope") + EOF_MARK, 900),
    (gzip.compress(b"[]") + EOF_MARK, 403),
    (frame({"session": "", "data": 1, "bogus": 2}), 403),
    (frame(envelope([{"fname": "add", "a": 1, "b": 2}])), 407),           # no session
    (frame(envelope([{"fname": "add", "a": 1, "b": 2}], "forged")), 408),
    (frame(envelope({"user": "alice"})), 412),
    (frame(envelope({"user": "alice", "password": "x", "otp": 1})), 403),
    (frame(envelope("fly me to the moon")), 403),
    (frame(envelope(None)), 403),
    (gzip.compress(b" " * (LIMIT + 1)) + EOF_MARK, 410),
], ids=["not-gzip", "empty", "bad-json", "not-object", "extra-key", "no-session",
        "forged-session", "user-without-password", "handshake-extra-key", "unknown-command",
        "null-data", "inflates-too-large"])
def test_root_errors_and_the_connection_stays(conn, payload, code):
    conn.replies()
    conn.proto.dataReceived(payload)
    [reply] = conn.replies()
    assert reply["error"]["code"] == code
    assert set(reply) == {"session", "name", "data", "error"}
    assert not conn.closed
    session = conn.handshake()  # still usable
    assert conn.ask([{"fname": "add", "a": 1, "b": 1}], session)["data"][0]["data"] == 2


def test_gzip_bomb_through_the_protocol(bomb):
    c = Conn(max_message_bytes=1024 * 1024)
    c.replies()
    start = time.monotonic()
    c.proto.dataReceived(bomb + EOF_MARK)
    assert time.monotonic() - start < 1.0
    [reply] = c.replies()
    assert reply["error"]["code"] == 410
    c.lose()


def test_oversized_message_without_eof_closes(conn):
    session = conn.handshake()
    conn.proto.dataReceived(GZIP_START + b"x" * (LIMIT + 10))  # begins as gzip does
    [reply] = conn.replies()
    assert reply["error"]["code"] == 410 and "larger than" in reply["error"]["msg"]
    assert conn.closed
    assert session  # answered once, then hung up


@pytest.mark.parametrize("head", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                  b"POST /api HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"])
def test_an_http_request_is_answered_at_once_and_closed(conn, head):
    """No <EOF> will come: it used to wait for max_message_bytes or the idle timeout."""
    conn.replies()  # the greeting
    conn.proto.dataReceived(head)
    [reply] = conn.replies()
    assert reply["error"]["code"] == 410 and "not HTTP" in reply["error"]["msg"]
    assert conn.closed


@pytest.mark.parametrize("garbage", [b"hello", b"\x1f\x00", b"{\"session\": \"\"}"])
def test_bytes_that_cannot_begin_a_message_are_answered_at_once_and_closed(conn, garbage):
    conn.replies()
    conn.proto.dataReceived(garbage)
    [reply] = conn.replies()
    assert reply["error"]["code"] == 410 and "gzip" in reply["error"]["msg"]
    assert conn.closed


def test_a_message_arriving_a_byte_at_a_time_is_still_read(conn):
    session = conn.handshake()
    for byte in frame(envelope([{"fname": "add", "a": 1, "b": 2}], session)):
        conn.proto.dataReceived(bytes([byte]))
    [reply] = conn.replies()
    assert reply["data"] == [{"fname": "add", "data": 3}]
    assert not conn.closed


def test_a_message_after_whole_ones_that_is_not_gzip_is_answered_in_its_turn(conn):
    session = conn.handshake()
    call = frame(envelope([{"fname": "add", "a": 1, "b": 2}], session))
    conn.proto.dataReceived(call + call + b"GET / HTTP/1.1\r\n")
    first, second, refused = conn.replies()
    assert first["data"] == second["data"] == [{"fname": "add", "data": 3}]
    assert refused["error"]["code"] == 410 and conn.closed


def test_session_reused_by_another_connection(conn):
    session = conn.handshake()
    other = Conn(node=conn.node, clock=conn.clock)
    other.replies()
    reply = other.ask([{"fname": "add", "a": 2, "b": 2}], session)
    assert reply["data"] == [{"fname": "add", "data": 4}]
    assert other.proto.conn.session_id == session
    other.lose()


def test_expired_session(conn):
    session = conn.handshake()
    conn.clock.advance(61)
    reply = conn.ask([{"fname": "add", "a": 1, "b": 1}], session)
    assert reply["error"]["code"] == 408


# -- timeouts --------------------------------------------------------------------

def test_handshake_timeout():
    c = Conn(handshake_timeout=5, idle_timeout=0)
    c.replies()
    c.clock.advance(4.9)
    assert not c.closed
    c.proto.dataReceived(b"\x1f")  # bytes that are not a handshake do not count
    c.clock.advance(0.1)
    [reply] = c.replies()
    assert reply["error"]["code"] == 407
    assert c.closed
    c.lose()
    assert c.clock.getDelayedCalls() == []


def test_handshake_in_time_cancels_the_timer():
    c = Conn(handshake_timeout=5, idle_timeout=0)
    c.handshake()
    c.clock.advance(100)
    assert not c.closed
    assert c.replies() == []
    c.lose()


def test_sending_a_session_counts_as_handshake(conn):
    session = conn.handshake()
    other = Conn(node=conn.node, clock=conn.clock, handshake_timeout=5, idle_timeout=0)
    other.replies()
    other.ask([{"fname": "add", "a": 1, "b": 1}], session)
    conn.clock.advance(10)
    assert not other.closed
    other.lose()


def test_idle_timeout():
    c = Conn(handshake_timeout=0, idle_timeout=5)
    c.replies()
    c.clock.advance(4)
    c.proto.dataReceived(b"\x1f")  # any bytes are activity
    c.clock.advance(4)
    assert not c.closed
    c.clock.advance(1.1)
    assert c.closed
    c.lose()
    assert c.clock.getDelayedCalls() == []


def test_a_long_call_is_not_idleness():
    c = Conn(handshake_timeout=0, idle_timeout=5)
    session = c.handshake()
    c.send([{"fname": "block"}], session)
    for _ in range(40):  # several idle periods pass while the call runs
        c.clock.advance(0.5)
    assert not c.closed
    c.pending[0].callback("done")
    assert c.replies()[0]["data"] == [{"fname": "block", "data": "done"}]
    c.clock.advance(5.1)
    assert c.closed
    c.lose()


def test_no_timeouts_when_disabled():
    c = Conn(handshake_timeout=0, idle_timeout=0)
    assert c.clock.getDelayedCalls() == []
    c.clock.advance(10_000)
    assert not c.closed
    c.lose()


# -- flow control and shutdown ------------------------------------------------------

def test_reading_pauses_while_too_many_messages_wait(conn):
    session = conn.handshake()
    conn.send([{"fname": "block"}], session)
    conn.proto.dataReceived(b"".join(
        frame(envelope([{"fname": "add", "a": i, "b": 0}], session))
        for i in range(MAX_QUEUED + 1)))
    assert conn.transport.producerState == "paused"
    conn.pending[0].callback("unblocked")
    replies = conn.replies()
    assert replies[0]["data"][0]["data"] == "unblocked"
    assert [r["data"][0]["data"] for r in replies[1:]] == list(range(MAX_QUEUED + 1))
    assert conn.transport.producerState == "producing"


def test_close_all_waits_for_the_message_in_hand(conn):
    session = conn.handshake()
    conn.send([{"fname": "block"}], session)
    conn.send([{"fname": "add", "a": 1, "b": 1}], session)  # queued, dropped on close
    done = conn.factory.close_all()
    assert not done.called and not conn.closed
    conn.pending[0].callback("last")
    assert [r["data"] for r in conn.replies()] == [[{"fname": "block", "data": "last"}]]
    assert conn.closed
    conn.lose()
    assert done.called
    assert conn.proto.conn not in conn.node.hub.clients()


def test_close_all_without_connections():
    c = Conn()
    c.lose()
    assert c.factory.close_all().called


# -- server commands -----------------------------------------------------------------

def test_guest_cannot_stop_the_server(conn):
    session = conn.handshake()
    for command in ("serverquit", "SERVERRESTART", 1, 2):
        reply = conn.ask(command, session)
        assert reply["error"]["code"] == 406
    reply = conn.ask("serverquit")  # and without a session
    assert reply["error"]["code"] == 407
    assert conn.node.dispatcher.accepting


def test_requestauth_answers_the_greeting(conn):
    [greeting] = conn.replies()
    assert conn.ask("requestauth") == greeting
    assert conn.ask(3) == greeting


def test_admin_serverquit_is_broadcast_to_every_client(conn):
    conn.replies()
    admin = conn.node.sessions.create({"user_name": "root", "role": "admin"}).result
    watcher = Conn(node=conn.node, clock=conn.clock)
    watcher.replies()
    conn.send("ServerQuit", admin.id)
    expected = {"session": "", "name": "unit-node", "data": "serverquit"}
    assert conn.replies() == [expected]   # the broadcast is the only reply
    assert watcher.replies() == [expected]
    assert not conn.node.dispatcher.accepting
    watcher.lose()


def test_push_to_a_connection(conn):
    conn.replies()
    conn.node.hub.broadcast("announce", {"message": "hi"})
    assert conn.replies() == [{"session": "", "name": "unit-node",
                               "data": {"action": "announce", "data": {"message": "hi"}}}]


def test_disconnect_unregisters(conn):
    conn.replies()
    conn.lose()
    assert conn.proto.conn not in conn.node.hub.clients()
    assert conn.proto not in conn.factory.connections
    conn.proto.deliver(HubMessage(COMMAND, "serverquit"))
    assert conn.replies() == []  # nothing is written to a closed connection


# -- login handshake (the password check runs in a thread) -----------------------------

@pytest_twisted.inlineCallbacks
def test_login_handshake():
    c = Conn(guest_allowed=False, handshake_timeout=5)
    c.replies()
    got = []
    c.send({"user": "alice", "password": "right"})
    yield wait_until(lambda: got.extend(c.replies()) or got)
    [reply] = got
    assert reply["data"] == "Authenticated"
    session = yield c.node.sessions.get(reply["session"])
    assert session.user_info == {"user_name": "alice", "role": "admin"}
    c.clock.advance(10)  # the handshake timer was cancelled
    assert not c.closed
    c.lose()


@pytest_twisted.inlineCallbacks
def test_wrong_password_handshake_is_delayed():
    c = Conn(guest_allowed=False, handshake_timeout=0, idle_timeout=0)
    c.replies()
    assert c.clock.getDelayedCalls() == []
    c.send({"user": "alice", "password": "wrong"})
    yield wait_until(lambda: c.clock.getDelayedCalls())  # the check is done; now the delay
    assert c.replies() == []
    c.clock.advance(0.99)
    assert c.replies() == []
    c.clock.advance(0.01)
    [reply] = c.replies()
    assert reply["error"]["code"] == 411
    assert reply["session"] == ""
    assert c.proto.conn.session_id is None
    c.lose()


def test_compressed_size_over_the_limit_is_refused_even_with_eof(conn):
    conn.handshake()
    # incompressible bytes: the frame itself is over the limit, <EOF> and all
    raw = gzip.compress(os.urandom(LIMIT * 2))
    conn.proto.dataReceived(raw.replace(EOF_MARK, b"") + EOF_MARK)
    [reply] = conn.replies()
    assert reply["error"]["code"] == 410
    assert not conn.closed  # the boundary was known: the connection goes on
    assert conn.ask([{"fname": "add", "a": 1, "b": 1}], conn.proto.conn.session_id)["data"][0]["data"] == 2


@pytest_twisted.inlineCallbacks
def test_handshake_timeout_during_a_login_sends_only_the_timeout():
    c = Conn(guest_allowed=False, handshake_timeout=5, idle_timeout=0)
    c.replies()
    c.send({"user": "alice", "password": "wrong"})
    c.clock.advance(5)  # the timer fires while the password is being checked
    [reply] = c.replies()
    assert reply["error"]["code"] == 407
    assert c.closed
    yield wait_until(lambda: c.clock.getDelayedCalls())  # check done; failed-login delay
    c.clock.advance(2)
    assert c.replies() == []  # no 411 after the 407
    c.lose()


@pytest.mark.parametrize("error, code", [(RuntimeError("hidden"), 100),
                                         (errors.ApplicationError("said so"), 400)])
def test_a_call_that_fails_later_is_answered_in_order(conn, error, code):
    """The coroutine resumed by a failing Deferred gets the error, and the
    message queued behind it is answered after it."""
    session = conn.handshake()
    conn.send([{"fname": "block"}], session)
    conn.send([{"fname": "add", "a": 1, "b": 1}], session)
    assert conn.replies() == []
    conn.pending[0].errback(error)
    first, second = conn.replies()
    assert first["data"][0]["error"]["code"] == code
    assert "hidden" not in json.dumps(first)
    assert second["data"] == [{"fname": "add", "data": 2}]


def test_a_session_store_that_fails_later_gives_a_root_error():
    """Like Redis dropping while a GETEX is in flight: 504, and the next message is served."""
    clock = Clock()
    store = MemorySessionStore(60, clock=clock)
    pending = []
    real_get_now = store.get_now

    def slow_get(session_id):
        d = defer.Deferred()
        pending.append((d, session_id))
        return d
    auth = Authenticator(ROLES, USERS, True, "guest", 1.0, clock)
    node = Node("unit-node", make_task([]), auth, store, MemoryScope(), MemoryHub())
    c = Conn(node=node, clock=clock)
    session = c.handshake()
    store.get = slow_get
    store.get_now = lambda session_id: None  # like Redis: always ask get()
    c.send([{"fname": "add", "a": 1, "b": 1}], session)
    c.send([{"fname": "add", "a": 2, "b": 2}], session)
    pending.pop(0)[0].errback(errors.BackendUnavailable("Redis went away"))
    [reply] = c.replies()
    assert reply["error"] == {"code": 504, "msg": "Redis went away"}
    d, sid = pending.pop(0)
    d.callback(real_get_now(sid))
    [reply] = c.replies()
    assert reply["data"] == [{"fname": "add", "data": 4}]
    c.lose()


def test_a_call_list_that_waits_midway_keeps_its_order(conn):
    """Calls after one that waits run only once it has answered, in order."""
    session = conn.handshake()
    conn.send([{"fname": "add", "a": 1, "b": 1}, {"fname": "block"},
               {"fname": "add", "a": 2}, {"fname": "block"}, {"fname": "add", "a": 3, "b": 3}],
              session)
    assert conn.replies() == []
    assert len(conn.pending) == 1  # the second block has not started yet
    conn.pending[0].callback("first")
    assert conn.replies() == []
    assert len(conn.pending) == 2
    conn.pending[1].callback("second")
    [reply] = conn.replies()
    assert reply["session"] == session
    assert [(e["fname"], e["data"], e.get("error", {}).get("code")) for e in reply["data"]] == [
        ("add", 2, None), ("block", "first", None), ("add", None, 413),
        ("block", "second", None), ("add", 6, None)]
    assert conn.node.dispatcher.inflight == 0


def test_a_bug_in_the_door_answers_100_and_the_next_message_is_served(conn, monkeypatch):
    session = conn.handshake()
    monkeypatch.setattr(conn.proto, "_run_calls", lambda *a: 1 / 0)
    conn.send([{"fname": "add", "a": 1, "b": 1}], session)
    [reply] = conn.replies()
    assert reply["error"]["code"] == 100
    monkeypatch.undo()
    assert conn.ask([{"fname": "add", "a": 1, "b": 1}], session)["data"][0]["data"] == 2


# -- a client that hangs up ---------------------------------------------------------

def ran_tallies(conn):
    return [n for entry in conn.pending if type(entry) is tuple for n in entry[1:]]


def test_a_client_that_hangs_up_gets_none_of_its_queued_calls_run(conn):
    session = conn.handshake()
    conn.send([{"fname": "block"}], session)
    conn.proto.dataReceived(b"".join(frame(envelope([{"fname": "tally", "n": i}], session))
                                     for i in range(5)))
    assert ran_tallies(conn) == []  # queued behind the blocked call
    conn.lose()
    conn.pending[0].callback("too late")
    assert ran_tallies(conn) == []
    assert conn.node.dispatcher.inflight == 0


def test_a_client_that_hangs_up_midway_through_a_call_list_stops_it_there(conn):
    session = conn.handshake()
    conn.send([{"fname": "tally", "n": 1}, {"fname": "block"}, {"fname": "tally", "n": 2}],
              session)
    assert ran_tallies(conn) == [1]
    conn.lose()
    conn.pending[1].callback("too late")
    assert ran_tallies(conn) == [1]
    assert conn.transport.value().count(EOF_MARK) == 2  # greeting and handshake only


def test_a_client_that_hangs_up_while_its_session_is_looked_up_runs_nothing():
    """With a store that must ask elsewhere (Redis), the calls wait for the
    session; if the client has left by then, they are not run."""
    clock = Clock()
    store = MemorySessionStore(60, clock=clock)
    pending = []
    auth = Authenticator(ROLES, USERS, True, "guest", 1.0, clock)
    node = Node("unit-node", make_task(pending), auth, store, MemoryScope(), MemoryHub())
    c = Conn(node=node, clock=clock)
    session = c.handshake()
    live = store.get_now(session)
    lookups = []
    store.get_now = lambda session_id: None  # like Redis: always ask get()
    store.get = lambda session_id: lookups.append(defer.Deferred()) or lookups[-1]
    c.send([{"fname": "tally", "n": 1}], session)
    [lookup] = lookups
    c.lose()
    lookup.callback(live)  # the store answers after the client left
    assert pending == []
    assert node.dispatcher.inflight == 0


def test_a_client_that_does_not_read_is_dropped_past_max_queued_bytes(conn):
    """Twisted pauses the connection's producer while its buffer is full:
    what is written meanwhile is counted, and past the cap it is dropped."""
    conn.handshake()
    producer = conn.transport.producer
    assert producer is not None and conn.transport.streaming
    producer.pauseProducing()  # the client stopped reading
    big = os.urandom(300_000).hex()  # gzips to about 300 kB on the wire
    for _ in range(10):  # about 3 MB: under the 4 MiB cap
        conn.node.hub.broadcast("flood", big)
    assert not conn.closed
    producer.resumeProducing()  # it read them: the count starts again
    producer.pauseProducing()
    for _ in range(10):
        conn.node.hub.broadcast("flood", big)
    assert not conn.closed
    for _ in range(10):  # about 6 MB since it stopped reading
        conn.node.hub.broadcast("flood", big)
    assert conn.closed  # dropped

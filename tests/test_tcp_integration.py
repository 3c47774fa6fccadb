"""The TCP door (HPX wire format) against a real ``twistd -n hpxd`` process.

Most tests share one module-wide daemon (``server``); tests that need their own
configuration, or that stop the daemon, start one with the ``daemons`` fixture.
Helpers here are imported by tests/test_tcp_client.py too.
"""

import functools
import gzip
import json
import re
import time
import zlib

import pytest

import hpxd
from hpxd.core.control import RESTART_EXIT_STATUS
from hpxd.core.passwords import hash_password
from tests.support import EOF_MARK, Daemon, RawClient, frame, tcp_config

SERVER_NAME = "hpxd-test"
PASSWORDS = {"alice": "alice-secret", "root": "root-secret"}
ROLES = {"alice": "user", "root": "admin"}
GENERIC_100 = "internal server error"


# -- helpers ------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def users():
    """[[users]]: alice (role user: view/create/edit/delete), root (role admin)."""
    return tuple((name, hash_password(pw), ROLES[name]) for name, pw in PASSWORDS.items())


def hpx_config(tcp="", extra=""):
    """``tcp_config`` plus keys inside its [tcp] table, a server name and a short login delay.

    ``tcp_config`` opens [tcp] itself and only appends ``extra`` after [web],
    so [tcp] keys are spliced into its table here.
    """
    text = tcp_config(f'[server]\nname = "{SERVER_NAME}"\n'
                      "[auth]\nfailed_login_delay = 0.2\n" + extra, users())
    return text.replace("[tcp]\n", "[tcp]\n" + tcp, 1)


_open_clients = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _open_clients:
        _open_clients.pop().close()


def connect(daemon):
    """A RawClient that has read (and checked) the greeting."""
    client = RawClient(daemon.tcp_port)
    _open_clients.append(client)
    greeting = client.recv()
    assert greeting["session"] == ""
    assert greeting["name"] == SERVER_NAME
    assert greeting["data"]["version"]["core"] == list(hpxd.VERSION)
    assert set(greeting["data"]["version"]) == {"core", "db", "torrent"}
    assert greeting["data"]["guest_allowed"] is True
    assert "error" not in greeting
    return client


def login(daemon, user=None):
    """Connect and handshake (as a guest when ``user`` is None); (client, session id)."""
    client = connect(daemon)
    data = {} if user is None else {"user": user, "password": PASSWORDS[user]}
    reply = client.call(data)
    assert reply["data"] == "Authenticated", reply
    assert reply["name"] == SERVER_NAME
    assert isinstance(reply["session"], str) and len(reply["session"]) >= 22  # >= 128 bits
    return client, reply["session"]


def call_one(client, session, fname, **kwargs):
    """Call one function; return its function-data object."""
    reply = client.call([dict(fname=fname, **kwargs)], session=session)
    assert "error" not in reply, reply
    assert reply["session"] == session and reply["name"] == SERVER_NAME
    [entry] = reply["data"]
    return entry


def assert_root_error(reply, code):
    assert reply.get("error", {}).get("code") == code, reply
    assert isinstance(reply["error"]["msg"], str) and reply["error"]["msg"]
    assert reply["name"] == SERVER_NAME
    assert reply["data"] == {}
    assert reply["data"] != "Authenticated"


def assert_add_works(client, session, a=2, b=3):
    assert call_one(client, session, "add", a=a, b=b) == {"fname": "add", "data": a + b}


def assert_serves(daemon):
    """The daemon is running and answers a normal call on a new connection."""
    assert daemon.proc.poll() is None, "daemon exited"
    client, session = login(daemon)
    assert_add_works(client, session)


def gz(raw):
    return gzip.compress(raw) + EOF_MARK


def recv_all_until_closed(client, timeout=5):
    """Every message the server sends until it closes the connection."""
    client.sock.settimeout(timeout)
    messages = []
    while True:
        try:
            messages.append(client.recv())
        except ConnectionError:
            return messages


def wait_for(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def status_kib(daemon, field):
    with open(f"/proc/{daemon.proc.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc status")


@functools.lru_cache(maxsize=None)
def gzip_bomb(size=1 << 30):
    """gzip of ``size`` zero bytes, built streaming (~1 MiB; memory stays small)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 9, zlib.Z_RLE)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One daemon shared by the tests that neither stop it nor need a special config."""
    daemon = Daemon(tmp_path_factory.mktemp("tcp"), hpx_config(), name="shared")
    daemon.start()
    yield daemon
    daemon.stop()


# -- handshake ------------------------------------------------------------------


def test_guest_and_user_handshakes(server):
    guest, guest_session = login(server)
    alice, alice_session = login(server, "alice")
    assert guest_session != alice_session
    assert call_one(guest, guest_session, "whoami")["data"] == {"user_name": None, "role": "guest"}
    assert call_one(alice, alice_session, "whoami")["data"] == {"user_name": "alice", "role": "user"}
    assert call_one(alice, alice_session, "catalog.test", a=1, b=2)["data"] == 3


@pytest.mark.parametrize("data, code", [
    ({"user": "alice", "password": "wrong"}, 411),
    ({"user": "nobody", "password": "whatever"}, 411),
    ({"user": "alice"}, 412),
    ({"user": "alice", "password": ""}, 412),
    ({"user": "alice", "password": 5}, 412),
    ({"user": "alice", "password": "alice-secret", "role": "admin"}, 403),
])
def test_bad_handshakes(server, data, code):
    client = connect(server)
    assert_root_error(client.call(data), code)
    # The connection is still usable: a good handshake now works.
    reply = client.call({"user": "alice", "password": PASSWORDS["alice"]})
    assert reply["data"] == "Authenticated"
    assert_add_works(client, reply["session"])


def test_requestauth_answers_with_the_greeting(server):
    client, session = login(server)
    for command in ("requestauth", "RequestAuth", 3):
        reply = client.call(command)
        assert reply["session"] == "" and reply["name"] == SERVER_NAME, reply
        assert reply["data"]["version"]["core"] == list(hpxd.VERSION)
        assert reply["data"]["guest_allowed"] is True
    # A session-less requestauth works too (no session needed to ask).
    fresh = connect(server)
    assert fresh.call("requestauth")["data"]["guest_allowed"] is True


# -- framing -----------------------------------------------------------------------


def test_two_messages_in_one_write_get_two_replies_in_order(server):
    client, session = login(server)
    client.send_bytes(
        frame({"session": session, "name": "t", "data": [{"fname": "add", "a": 1, "b": 2}]})
        + frame({"session": session, "name": "t", "data": [{"fname": "echo", "value": "second"}]}))
    assert client.recv()["data"] == [{"fname": "add", "data": 3}]
    assert client.recv()["data"] == [{"fname": "echo", "data": "second"}]


def test_many_pipelined_messages_never_stall(server):
    # Far more than the door queues before pausing the transport, all in one
    # write, with bad messages mixed in: one reply each, in order.
    client, session = login(server)
    n = 400
    burst = b"".join(
        b"garbage" + EOF_MARK if i % 50 == 7 else
        frame({"session": session, "name": "t", "data": [{"fname": "echo", "value": i}]})
        for i in range(n))
    client.send_bytes(burst)
    for i in range(n):
        reply = client.recv()
        if i % 50 == 7:
            assert_root_error(reply, 410)
        else:
            assert reply["data"] == [{"fname": "echo", "data": i}], (i, reply)
    assert_add_works(client, session)
    assert "TCP door failed" not in server.log()


def test_message_split_across_many_writes(server):
    client, session = login(server)
    data = frame({"session": session, "name": "t", "data": [{"fname": "add", "a": 20, "b": 22}]})
    for i in range(0, len(data), 3):  # also splits the <EOF> mark
        client.send_bytes(data[i:i + 3])
        time.sleep(0.002)
    assert client.recv()["data"] == [{"fname": "add", "data": 42}]


def test_multi_member_gzip_is_one_message(server):
    client, session = login(server)
    raw = json.dumps({"session": session, "name": "t",
                      "data": [{"fname": "add", "a": 1, "b": 1}]}).encode()
    client.send_bytes(gzip.compress(raw[:10]) + gzip.compress(raw[10:]) + EOF_MARK)
    assert client.recv()["data"] == [{"fname": "add", "data": 2}]


def test_gzip_bomb_is_refused_with_bounded_memory(daemons):
    bomb = gzip_bomb()
    assert len(bomb) < 2 << 20 and EOF_MARK not in bomb
    daemon = daemons(hpx_config())
    client, session = login(daemon)
    assert_add_works(client, session)
    rss_before, peak_before = daemon.rss_kib(), status_kib(daemon, "VmHWM")
    client.send_bytes(bomb + EOF_MARK)
    reply = client.recv()
    assert_root_error(reply, 410)
    rss_after, peak_after = daemon.rss_kib(), status_kib(daemon, "VmHWM")
    assert rss_after - rss_before < 64 * 1024, (rss_before, rss_after)
    assert peak_after - max(peak_before, rss_before) < 64 * 1024, (peak_before, peak_after)
    # The message boundary was known: the same connection still works, and so does a new one.
    assert_add_works(client, session)
    assert_serves(daemon)


# -- bad messages -------------------------------------------------------------------


def _bad_frames():
    good = json.dumps({"session": "", "name": "t", "data": {}}).encode()
    return [
        pytest.param(gzip.compress(good)[:-12] + EOF_MARK, 410, id="truncated-gzip"),
        pytest.param(b"this is not gzip" + EOF_MARK, 410, id="not-gzip"),
        pytest.param(EOF_MARK, 410, id="empty"),
        pytest.param(gz(b"\xff\xfe{}"), 410, id="not-utf8"),
        pytest.param(gz(b'{"session": "", "data": [}'), 900, id="invalid-json"),
        pytest.param(gz(b"[1, 2]"), 403, id="json-list"),
        pytest.param(gz(b'"serverquit"'), 403, id="json-string"),
        pytest.param(gz(b'{"session": "", "name": "t", "data": {}, "extra": 1}'), 403,
                     id="unknown-key"),
        pytest.param(gz(b'{"session": "", "name": "t"}'), 403, id="missing-data"),
        pytest.param(gz(b'{"session": 5, "name": "t", "data": {}}'), 403, id="session-not-str"),
        pytest.param(gz(b'{"session": "", "name": null, "data": {}}'), 403, id="name-not-str"),
        pytest.param(gz(b'{"session": "", "name": "t", "data": 1.5}'), 403, id="data-float"),
        pytest.param(gz(b'{"session": "", "name": "t", "data": null}'), 403, id="data-null"),
        pytest.param(gz(b'{"session": "", "name": "t", "data": true}'), 403, id="data-true"),
        pytest.param(gz(b'{"session": "", "name": "t", "data": 7}'), 403, id="data-unknown-int"),
        pytest.param(gz(b'{"session": "", "name": "t", "data": "dance"}'), 403,
                     id="unknown-command"),
        pytest.param(gz(b'{"session": "", "name": "t", "data": []}'), 407, id="calls-no-session"),
    ]


@pytest.mark.parametrize("payload, code", _bad_frames())
def test_bad_message_gets_root_error_and_connection_survives(server, payload, code):
    client, session = login(server)
    client.send_bytes(payload)
    assert_root_error(client.recv(), code)
    assert_add_works(client, session)
    assert_serves(server)


def test_bad_message_before_handshake_does_not_authenticate(server):
    client = connect(server)
    client.send_bytes(b"junk" + EOF_MARK)
    assert_root_error(client.recv(), 410)
    assert_root_error(client.call([{"fname": "add", "a": 1, "b": 2}]), 407)


def test_call_errors_are_per_entry_and_in_order(server):
    client, session = login(server)
    calls = [
        5,
        {"a": 1},
        {"fname": 7},
        {"fname": "nope"},
        {"fname": "catalog.nope"},
        {"fname": "catalog.__init__"},
        {"fname": "__class__.add", "a": 1, "b": 2},
        {"fname": "add", "a": 1},
        {"fname": "add", "a": 1, "b": 2, "c": 3},
        {"fname": "add", "item": 1, "a": 1, "b": 2},
        {"fname": "remember", "key": "k", "value": 1},
        {"fname": "catalog.add", "name": "x", "price": 1},
        {"fname": "announce", "message": "hi"},
        {"fname": "catalog.test", "a": 1, "b": 2},
        {"fname": "add", "a": 1, "b": 2},
    ]
    expected = [403, 403, 403, 404, 404, 404, 404, 413, 413, 413, 406, 406, 406, 400, None]
    reply = client.call(calls, session=session)
    assert "error" not in reply
    assert reply["session"] == session
    assert len(reply["data"]) == len(calls)
    for call, entry, code in zip(calls, reply["data"], expected):
        if isinstance(call, dict) and isinstance(call.get("fname"), str):
            assert entry["fname"] == call["fname"], (call, entry)
        if code is None:
            assert entry == {"fname": "add", "data": 3}
        else:
            assert entry["error"]["code"] == code, (call, entry)
            assert entry["error"]["msg"]
    assert reply["data"][13]["error"]["msg"] == "guests may not test"
    assert_add_works(client, session)


def test_user_privileges(server):
    client, session = login(server, "alice")
    assert call_one(client, session, "remember", key="colour", value="blue")["data"] is True
    assert call_one(client, session, "recall", key="colour")["data"] == "blue"
    row = call_one(client, session, "catalog.add", name="pen", price=1.5)
    assert "error" not in row, row


def test_unexpected_exception_gives_generic_100(server):
    client, session = login(server)
    reply = client.call([{"fname": "fail"}, {"fname": "add", "a": 1, "b": 2}], session=session)
    assert "error" not in reply
    failed, ok = reply["data"]
    assert failed["fname"] == "fail"
    assert failed["error"] == {"code": 100, "msg": GENERIC_100}
    assert ok == {"fname": "add", "data": 3}
    text = json.dumps(reply)
    assert "RuntimeError" not in text and "always fails" not in text and "Traceback" not in text
    wait_for(lambda: "always fails" in server.log(), what="the traceback in the log")
    log = server.log()
    assert "RuntimeError: the demo's fail() always fails" in log
    assert "Traceback" in log
    assert_add_works(client, session)


# -- size limits ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    daemon = Daemon(tmp_path_factory.mktemp("small"), hpx_config("max_message_bytes = 4096\n"),
                    name="small")
    daemon.start()
    yield daemon
    daemon.stop()


def test_message_without_eof_over_limit_gets_410_then_close(small_server):
    client, session = login(small_server)
    client.send_bytes(b"\x1f\x8b" + b"x" * 5000)  # begins as gzip does: only its size is wrong
    assert_root_error(client.recv(), 410)
    assert client.closed_by_server()
    assert_serves(small_server)


def test_an_http_request_to_the_tcp_door_gets_one_error_and_is_closed(small_server):
    """curl or a browser pointed at the wrong port: it used to hang after the greeting."""
    client = RawClient(small_server.tcp_port)
    client.recv()  # the greeting, already sent on connect
    client.send_bytes(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    reply = client.recv()
    assert_root_error(reply, 410)
    assert "not HTTP" in reply["error"]["msg"] and "[web] listen" in reply["error"]["msg"]
    assert client.closed_by_server()
    assert "sent what is not a message: b'GET / HTTP/1.1" in small_server.log()
    assert_serves(small_server)


def test_oversized_message_while_busy_gets_one_410(small_server):
    # The limit is hit while an earlier call is still running; what follows
    # on that connection is dropped: one 410, then the connection closes.
    client, session = login(small_server)
    # Generous gaps: the two writes must reach the server in separate reads
    # (one read holding both would carry a known boundary, which is a plain
    # 410 on an open connection), and both while the call still runs.
    client.send([{"fname": "wait", "seconds": 2}], session=session)
    time.sleep(0.5)
    client.send_bytes(b"\x1f\x8b" + b"x" * 5000)
    time.sleep(0.5)
    client.send_bytes(b"y" * 100 + EOF_MARK + frame(
        {"session": session, "name": "t", "data": [{"fname": "add", "a": 1, "b": 2}]}))
    messages = recv_all_until_closed(client)
    assert messages[0]["data"] == [{"fname": "wait", "data": 2.0}]
    assert len(messages) == 2, messages
    assert_root_error(messages[1], 410)
    assert_serves(small_server)


def test_message_inflating_over_limit_gets_410(small_server):
    # Valid JSON (leading whitespace is allowed) whose gzip is tiny but which
    # inflates to more than max_message_bytes.
    client, session = login(small_server)
    raw = b" " * 5000 + json.dumps({"session": session, "name": "t",
                                    "data": [{"fname": "add", "a": 1, "b": 2}]}).encode()
    client.send_bytes(gz(raw))
    assert_root_error(client.recv(), 410)
    # Just under the limit is fine.
    client.send_bytes(gz(raw[1500:]))
    assert client.recv()["data"] == [{"fname": "add", "data": 3}]


# -- server commands ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["serverquit", 1, "ServerQuit", "SERVERRESTART", 2])
def test_guest_cannot_stop_the_server(server, command):
    client, session = login(server)
    assert_root_error(client.call(command, session=session), 406)
    time.sleep(0.1)
    assert server.proc.poll() is None
    assert_add_works(client, session)
    assert_serves(server)


@pytest.mark.parametrize("command", ["serverquit", 1, "serverrestart"])
def test_sessionless_serverquit_needs_auth(server, command):
    client = connect(server)
    assert_root_error(client.call(command), 407)
    time.sleep(0.1)
    assert server.proc.poll() is None
    assert_serves(server)


def test_user_without_server_commands_cannot_stop_the_server(server):
    client, session = login(server, "alice")
    assert_root_error(client.call("serverquit", session=session), 406)
    assert_root_error(client.call("serverquit", session="no-such-session"), 408)
    assert server.proc.poll() is None
    assert_serves(server)


def _quit_message(command):
    return {"session": "", "name": SERVER_NAME, "data": command}


def test_admin_serverquit_reaches_every_client_and_exits_0(daemons):
    daemon = daemons(hpx_config())
    guests = [login(daemon)[0] for _ in range(2)]
    no_handshake = connect(daemon)
    alice, _ = login(daemon, "alice")
    admin, admin_session = login(daemon, "root")
    admin.send("serverquit", session=admin_session)
    for client in [admin, alice, no_handshake, *guests]:
        assert recv_all_until_closed(client) == [_quit_message("serverquit")]
    assert daemon.wait(15) == 0
    assert "exit status 0" in daemon.log()


def test_serverquit_answers_calls_in_flight_first(daemons):
    daemon = daemons(hpx_config())
    busy, busy_session = login(daemon)
    admin, admin_session = login(daemon, "root")
    busy.send([{"fname": "wait", "seconds": 1}], session=busy_session)
    time.sleep(0.2)  # the call is running
    started = time.monotonic()
    admin.send(1, session=admin_session)
    assert recv_all_until_closed(admin) == [_quit_message("serverquit")]
    # The reply to the call in flight first, THEN the push: a client that
    # reads one message per request (happypandax-client) gets its answer.
    assert recv_all_until_closed(busy) == [
        {"session": busy_session, "name": SERVER_NAME, "data": [{"fname": "wait", "data": 1.0}]},
        _quit_message("serverquit")]
    assert daemon.wait(15) == 0
    assert time.monotonic() - started >= 0.5


def test_admin_serverrestart_exits_75(daemons):
    daemon = daemons(hpx_config())
    guest, _ = login(daemon)
    admin, admin_session = login(daemon, "root")
    admin.send("ServerRestart", session=admin_session)
    assert recv_all_until_closed(admin) == [_quit_message("serverrestart")]
    assert recv_all_until_closed(guest) == [_quit_message("serverrestart")]
    assert daemon.wait(15) == RESTART_EXIT_STATUS == 75


# -- sessions ---------------------------------------------------------------------------------


def test_second_connection_reuses_the_session(server):
    first, session = login(server)
    assert call_one(first, session, "count")["data"] == 1
    second = connect(server)  # reads the greeting, no handshake
    assert call_one(second, session, "count")["data"] == 2
    assert call_one(first, session, "count")["data"] == 3
    assert call_one(second, session, "whoami")["data"]["role"] == "guest"
    # Sessions are separate: a new guest starts its own counter.
    other, other_session = login(server)
    assert call_one(other, other_session, "count")["data"] == 1


def test_user_session_reused_keeps_the_user(server):
    _, session = login(server, "alice")
    second = connect(server)
    assert call_one(second, session, "whoami")["data"] == {"user_name": "alice", "role": "user"}
    assert call_one(second, session, "catalog.test", a=2, b=2)["data"] == 4


@pytest.mark.parametrize("bad_session", ["no-such-session", "x" * 43])
def test_unknown_session_is_408_never_a_guest(server, bad_session):
    client = connect(server)
    reply = client.call([{"fname": "count"}], session=bad_session)
    assert_root_error(reply, 408)
    assert reply["session"] in ("", bad_session)
    # Still not authenticated: a session-less call is refused...
    assert_root_error(client.call([{"fname": "count"}]), 407)
    # ... and the same id still does not work.
    assert_root_error(client.call([{"fname": "count"}], session=bad_session), 408)
    # A handshake on the same connection then works.
    reply = client.call({})
    assert reply["data"] == "Authenticated" and reply["session"] != bad_session


def test_sessions_expire_and_slide(daemons):
    daemon = daemons(hpx_config(extra="[sessions]\nlifespan_seconds = 1\n"
                                      "purge_interval_seconds = 1\n"))
    idle, idle_session = login(daemon)
    busy, busy_session = login(daemon)
    assert call_one(idle, idle_session, "count")["data"] == 1
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 2.5:  # well past the lifespan, used every 0.3 s
        n += 1
        assert call_one(busy, busy_session, "count")["data"] == n
        time.sleep(0.3)
    n += 1
    assert_root_error(idle.call([{"fname": "count"}], session=idle_session), 408)
    # The expired session stays expired, on a new connection too.
    assert_root_error(connect(daemon).call([{"fname": "add", "a": 1, "b": 2}],
                                           session=idle_session), 408)
    assert call_one(busy, busy_session, "count")["data"] == n
    # A new handshake gives a fresh session.
    client, session = login(daemon)
    assert call_one(client, session, "count")["data"] == 1


# -- timeouts ---------------------------------------------------------------------------------


def test_handshake_timeout(daemons):
    daemon = daemons(hpx_config("handshake_timeout = 0.5\n"))
    silent = connect(daemon)
    shaken, session = login(daemon)
    reusing = connect(daemon)
    assert_add_works(reusing, session)  # a session in the envelope counts as a handshake
    time.sleep(1.0)
    messages = recv_all_until_closed(silent)
    assert len(messages) == 1
    assert_root_error(messages[0], 407)
    assert messages[0]["session"] == ""
    assert_add_works(shaken, session)
    assert_add_works(reusing, session)


def test_idle_timeout(daemons):
    daemon = daemons(hpx_config("idle_timeout = 0.5\n"))
    idle, session = login(daemon)
    busy, busy_session = login(daemon)
    started = time.monotonic()
    # A call that runs longer than the idle timeout is not idleness.
    assert call_one(busy, busy_session, "wait", seconds=1)["data"] == 1.0
    assert idle.closed_by_server(timeout=5)
    assert time.monotonic() - started < 3
    assert busy.closed_by_server(timeout=5)
    # The session outlives the connection.
    again = connect(daemon)
    assert_add_works(again, session)


# -- pushes ------------------------------------------------------------------------------------


def test_announce_is_pushed_to_every_client(server):
    listener, _ = login(server)
    no_handshake = connect(server)
    alice, session = login(server, "alice")
    alice.send([{"fname": "announce", "message": "hello"}], session=session)
    push = {"session": "", "name": SERVER_NAME,
            "data": {"action": "announce", "data": {"message": "hello", "from": "alice"}}}
    assert listener.recv() == push
    assert no_handshake.recv() == push
    # The caller gets its reply, then the push (never between a request and its reply).
    assert alice.recv() == {"session": session, "name": SERVER_NAME,
                            "data": [{"fname": "announce", "data": True}]}
    assert alice.recv() == push
    # The push did not disturb the listener's next call.
    assert_serves(server)


def test_shared_daemon_never_hit_a_door_bug(server):
    assert server.proc.poll() is None
    log = server.log()
    assert "TCP door failed" not in log
    assert not re.search(r"Unhandled (error|Error) in Deferred", log), log


def test_sigterm_with_a_long_call_exits_within_the_shutdown_timeouts(daemons):
    """shutdown_timeout bounds the wait for calls, and again the closing: a
    call that runs far longer cannot hold the process."""
    import signal
    config = hpx_config().replace("[server]\n", "[server]\nshutdown_timeout = 1\n", 1)
    daemon = daemons(config)
    busy, session = login(daemon)
    busy.send([{"fname": "wait", "seconds": 20}], session=session)
    time.sleep(0.3)  # the call is running
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    assert recv_all_until_closed(busy) == [_quit_message("serverquit")]
    assert daemon.wait(15) == -signal.SIGTERM  # twistd ends a graceful stop by its signal
    assert time.monotonic() - started < 6
    assert "shutdown: calls still running after 1 s" in daemon.log()

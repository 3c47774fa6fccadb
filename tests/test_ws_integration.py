"""The WebSocket door against a real ``twistd -n hpxd``, with an independent
client: the public ``websockets`` library (its blocking client)."""

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support import Daemon, RawClient, slow_ws_reader, tcp_config

WEB = '[web]\nlisten = ["tcp:0:interface=127.0.0.1"]\nmax_body_bytes = 65536\n'
SERVER = '[server]\nname = "ws-test"\n'


def config(extra=""):
    return tcp_config(SERVER + extra).replace("[web]\nlisten = []\n", WEB)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("ws"), config(), name="ws").start()
    yield d
    d.stop()


def ws(daemon, **kwargs):
    return connect(f"ws://127.0.0.1:{daemon.web_port}/ws", open_timeout=5, **kwargs)


def ask(conn, stream, action, data=None):
    """Send one action; every message of its stream, up to its close."""
    conn.send(json.dumps({"streamId": stream, "action": action, "data": data}))
    out = []
    while True:
        message = json.loads(conn.recv(timeout=10))
        if message.get("streamId") == stream:
            out.append(message)
            if message.get("close"):
                return out


def test_call(daemon):
    with ws(daemon) as conn:
        assert ask(conn, 1, "add", [1, 2]) == [{"streamId": 1, "data": 3},
                                               {"streamId": 1, "close": True}]
        assert ask(conn, 2, "add", {"a": 2, "b": 3})[0]["data"] == 5


def test_a_stream_of_values_then_the_return_value_then_close(daemon):
    with ws(daemon) as conn:
        messages = ask(conn, "c", "countdown", {"start": 3})
    assert messages == [{"streamId": "c", "data": n} for n in (3, 2, 1, "liftoff")] + [
        {"streamId": "c", "close": True}]


def test_errors_carry_a_code_and_the_connection_goes_on(daemon):
    with ws(daemon) as conn:
        assert ask(conn, 1, "fail") == [
            {"streamId": 1, "error": "internal server error", "code": 100},
            {"streamId": 1, "close": True}]
        [error, _] = ask(conn, 2, "no_such_action")
        assert error["code"] == 404
        [error, _] = ask(conn, 3, "add", [1])
        assert error["code"] == 413 and error["error"].startswith("add: ")
        assert ask(conn, 4, "add", [1, 1])[0]["data"] == 2


@pytest.mark.parametrize("raw, code", [
    ("{not json", 900), ("[1, 2]", 403), ('{"action": "add"}', 403),
    ('{"streamId": true, "action": "add"}', 403), ('{"streamId": 1, "action": 5}', 403),
    ('{"streamId": 1, "action": "add", "data": 5}', 413),  # add(5): b is missing
    ('{"streamId": 1, "action": "add", "data": {"*args": 1}}', 413),
    ('{"streamId": 1, "action": "login", "data": "alice"}', 412),
    ('{"streamId": 1, "action": "attach", "data": {"session": 42}}', 408),
])
def test_malformed_messages_get_an_error_and_the_connection_stays(daemon, raw, code):
    with ws(daemon) as conn:
        conn.send(raw)
        answer = json.loads(conn.recv(timeout=10))
        assert answer["code"] == code and answer["error"]
        assert ask(conn, 9, "add", [1, 1])[0]["data"] == 2


def test_an_oversized_message_closes_with_1009_and_the_daemon_is_fine(daemon):
    with ws(daemon) as conn:
        conn.send(json.dumps({"streamId": 1, "action": "echo", "data": ["x" * 70000]}))
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv(timeout=10)
        assert closed.value.rcvd.code == 1009
    with ws(daemon) as conn:
        assert ask(conn, 1, "add", [1, 1])[0]["data"] == 2


@pytest.mark.parametrize("compression", ["deflate", None])
def test_an_oversized_message_closes_at_once_with_or_without_deflate(daemon, compression):
    """websockets offers permessage-deflate by default. autobahn stops
    reading a deflated frame in its middle when it passes the cap, and then
    never sees the client's answer to its 1009: the close used to hang
    until the close-handshake timeout (10 s) dropped it with 1006."""
    with ws(daemon, compression=compression) as conn:
        conn.send(json.dumps({"streamId": 1, "action": "echo", "data": ["x" * 70000]}))
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv(timeout=30)
        took = time.monotonic() - started
    assert closed.value.rcvd.code == 1009
    assert took < 5, f"the close took {took:.1f} s: the server waited for its timeout"
    with ws(daemon) as conn:
        assert ask(conn, 1, "add", [1, 1])[0]["data"] == 2


def test_a_binary_frame_closes_with_1003(daemon):
    with ws(daemon) as conn:
        conn.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv(timeout=10)
        assert closed.value.rcvd.code == 1003


def test_stream_ids_belong_to_their_connection(daemon):
    with ws(daemon) as one, ws(daemon) as two:
        for conn in (one, two):
            conn.send(json.dumps({"streamId": 7, "action": "wait", "data": {"seconds": 0.3}}))
        assert ask(one, 8, "add", [1, 1])[0]["data"] == 2
        one.send(json.dumps({"streamId": 7, "action": "add", "data": [1, 1]}))  # 7 is running
        refused = json.loads(one.recv(timeout=10))
        assert refused["streamId"] == 7 and refused["code"] == 403
        for conn in (one, two):
            messages = [json.loads(conn.recv(timeout=10)) for _ in range(2)]
            assert messages == [{"streamId": 7, "data": 0.3}, {"streamId": 7, "close": True}]


def test_a_slow_call_does_not_hold_up_a_fast_one(daemon):
    with ws(daemon) as conn:
        conn.send(json.dumps({"streamId": "slow", "action": "wait", "data": {"seconds": 1}}))
        started = time.monotonic()
        assert ask(conn, "fast", "add", [2, 2])[0]["data"] == 4
        assert time.monotonic() - started < 0.5
        assert json.loads(conn.recv(timeout=10)) == {"streamId": "slow", "data": 1.0}


def test_a_foreign_origin_is_refused_and_a_listed_one_allowed(daemon):
    with pytest.raises(InvalidStatus) as refused:
        ws(daemon, origin="http://evil.example.com")
    response = refused.value.response  # the web door's one Origin check: 403 and why
    assert response.status_code == 403
    body = json.loads(response.body)
    assert body["code"] == 406 and "allowed_origins" in body["error"]
    for origin in ("null", "file://", "http://127.0.0.1:7008.evil.example.com"):
        with pytest.raises(InvalidStatus) as refused:
            ws(daemon, origin=origin)
        assert refused.value.response.status_code == 403
    with ws(daemon, origin="http://127.0.0.1:7008") as conn:  # [web] allowed_origins
        assert ask(conn, 1, "add", [1, 1])[0]["data"] == 2


def test_sessions_cross_doors_both_ways(daemon):
    tcp = RawClient(daemon.tcp_port)
    tcp.recv()
    tcp_session = tcp.call({})["session"]
    tcp.call([{"fname": "count"}], tcp_session)
    with ws(daemon) as conn:
        [attached, _] = ask(conn, 1, "attach", {"session": tcp_session})
        assert attached["data"]["session"] == tcp_session
        assert ask(conn, 2, "count")[0]["data"] == 2  # the same session's data
        ws_session = ask(conn, 3, "session")[0]["data"]["session"]
    other = RawClient(daemon.tcp_port)
    other.recv()
    assert other.call([{"fname": "count"}], ws_session)["data"][0]["data"] == 3
    tcp.close()
    other.close()


def test_login_logout_over_ws(tmp_path):
    from hpxd.core.passwords import hash_password
    users = [("alice", hash_password("alice-pw", log2_n=10), "user")]
    text = tcp_config(SERVER + "[auth]\nfailed_login_delay = 0.05\n",
                      users).replace("[web]\nlisten = []\n", WEB)
    d = Daemon(tmp_path, text).start()
    try:
        with ws(d) as conn:
            [error, _] = ask(conn, 1, "login", {"user": "alice", "password": "nope"})
            assert error["code"] == 411
            [ok, _] = ask(conn, 2, "login", {"user": "alice", "password": "alice-pw"})
            assert ok["data"]["user"] == "alice" and ok["data"]["role"] == "user"
            assert ask(conn, 3, "whoami")[0]["data"] == {"user_name": "alice", "role": "user"}
            assert ask(conn, 4, "logout") == [{"streamId": 4, "close": True}]
            assert ask(conn, 5, "whoami")[0]["data"]["role"] == "guest"  # a guest again
    finally:
        d.stop()


def _admin_config(tmp_path):
    from hpxd.core.passwords import hash_password
    users = [("root", hash_password("root-pw", log2_n=10), "admin")]
    return Daemon(tmp_path, tcp_config(SERVER, users).replace("[web]\nlisten = []\n", WEB))


def test_serverquit_over_tcp_reaches_a_ws_client_then_1001(tmp_path):
    d = _admin_config(tmp_path).start()
    try:
        with ws(d) as conn:
            assert ask(conn, 1, "add", [1, 1])[0]["data"] == 2
            admin = RawClient(d.tcp_port)
            admin.recv()
            session = admin.call({"user": "root", "password": "root-pw"})["session"]
            admin.send("serverquit", session=session)
            assert json.loads(conn.recv(timeout=10)) == {
                "streamId": "server", "action": "serverquit", "data": None}
            with pytest.raises(ConnectionClosed) as closed:
                conn.recv(timeout=10)
            assert closed.value.rcvd.code == 1001
            admin.close()
        assert d.wait(15) == 0
    finally:
        d.stop()


def test_serverquit_over_ws_reaches_a_tcp_client(tmp_path):
    d = _admin_config(tmp_path).start()
    try:
        tcp = RawClient(d.tcp_port)
        tcp.recv()
        tcp.call({})
        with ws(d) as conn:
            ask(conn, 1, "login", {"user": "root", "password": "root-pw"})
            conn.send(json.dumps({"streamId": 2, "action": "serverquit"}))
            assert tcp.recv() == {"session": "", "name": "ws-test", "data": "serverquit"}
            assert tcp.closed_by_server()
        tcp.close()
        assert d.wait(15) == 0
    finally:
        d.stop()


def test_the_demo_clock_process_ticks_to_the_connection_that_asked(daemon):
    with ws(daemon) as watcher, ws(daemon) as other:
        assert ask(watcher, 1, "watch_clock", {"seconds": 2})[0]["data"] == 2
        ticks = []
        while len(ticks) < 2:
            message = json.loads(watcher.recv(timeout=5))
            if message.get("action") == "tick":
                ticks.append(message)
        assert all(t["streamId"] == "clock" and set(t["data"]) == {"time", "left"}
                   for t in ticks)
        # the other connection did not ask: after a tick's time, only its answer comes
        time.sleep(1.2)
        other.send(json.dumps({"streamId": 2, "action": "add", "data": [1, 1]}))
        assert [json.loads(other.recv(timeout=5)) for _ in range(2)] == [
            {"streamId": 2, "data": 2}, {"streamId": 2, "close": True}]


def test_a_slow_reader_is_dropped_and_the_daemons_memory_stays_bounded(tmp_path):
    """A raw-socket WebSocket client that never reads, flooded with broadcasts
    by another (websockets) client: dropped past [web] max_queued_bytes,
    logged, and the daemon's RSS grows far less than what was pushed at it."""
    from hpxd.core.passwords import hash_password
    users = [("ed", hash_password("ed-pw", log2_n=10), "user")]
    web = WEB.replace("max_body_bytes = 65536", "max_body_bytes = 262144\n"
                      "max_queued_bytes = 262144")
    d = Daemon(tmp_path, tcp_config(SERVER, users).replace("[web]\nlisten = []\n", web)).start()
    slow = slow_ws_reader(d.web_port)
    try:
        with ws(d) as sender:
            ask(sender, 1, "login", {"user": "ed", "password": "ed-pw"})
            rss_before = d.rss_kib()
            big = "x" * 100_000
            pushed = 0
            for n in range(2, 202):  # 20 MB of broadcasts
                ask(sender, n, "announce", {"message": big})
                pushed += len(big)
            assert "dropping ws client" in d.log() and "it does not read" in d.log()
            growth = d.rss_kib() - rss_before
            assert growth < 8 * 1024, (growth, pushed)  # KiB; not the MBs pushed at it
            assert ask(sender, 999, "add", [1, 2])[0]["data"] == 3  # the daemon serves on
        # The server dropped it: reading now ends (or is reset) after what
        # the kernels held, instead of being fed on and on.
        received = 0
        while True:
            try:
                chunk = slow.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += len(chunk)
            assert received < 4 * 1024 * 1024, "the slow reader is still being fed"
    finally:
        slow.close()
        d.stop()

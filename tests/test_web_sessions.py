"""The session of a web request and what anonymous clients cost.

- the ``hpxd_session`` cookie helpers (hpxd/doors/web/cookies.py);
- ``/session``: log in and out over HTTP; the cookie then carries the user
  into a WebSocket upgrade;
- transient guest sessions: requests without a cookie store nothing, and
  a transient session is stored only once a call gives it data;
- guest sessions of TCP handshakes end with their connection (plus the
  grace), and ``[sessions] max_guest_sessions`` refuses guests past a cap;
- the web door's one Origin check on a resource other than ``/ws``;
- the WebSocket upgrade with a cookie while Redis is away: 503, not a guest.

In process, on real sockets, on both backends where a store is involved.
"""

import json

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.internet import defer, endpoints
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from hpxd.app import Task
from hpxd.core import errors
from hpxd.core.passwords import hash_password
from hpxd.core.sessions import Session
from hpxd.doors.web.cookies import end_session, keep_session, session_id_in
from tests.door_clients import DoorError, TcpClient, WsClient, _WsWire
from tests.support import start_service, wait_until

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using readBody with a transport that does not have an abortConnection method")

PASSWORD = "alice-pw-1"
GRACE = 0.3
ORIGIN = "http://app.example.com:8080"


# -- the cookie helpers ------------------------------------------------------------

def request_with(cookie=None, secure=False):
    channel = DummyChannel()
    if secure:
        channel.transport = DummyChannel.SSL()
    request = Request(channel)
    if cookie is not None:
        request.requestHeaders.setRawHeaders(b"cookie", [cookie])
    return request


@pytest.mark.parametrize("header, expected", [
    ("hpxd_session=abc", "abc"), ("a=1; hpxd_session=abc; b=2", "abc"),
    ('hpxd_session="abc"', "abc"), ("hpxd_session=", None), ("other=abc", None),
    ("", None), ("hpxd_sessionx=abc", None), (b"hpxd_session=abc", "abc"),
])
def test_the_session_id_in_a_cookie_header(header, expected):
    assert session_id_in(header) == expected


def test_a_stored_session_new_to_the_request_sets_the_cookie():
    request = request_with()
    keep_session(request, Session("s1", {"user_name": "alice", "role": "user"}))
    [cookie] = request.cookies
    parts = cookie.split(b"; ")
    assert parts[0] == b"hpxd_session=s1"
    assert set(parts[1:]) == {b"Path=/", b"HttpOnly", b"SameSite=lax"}  # no Secure on plain HTTP


def test_the_cookie_is_secure_on_a_tls_listener():
    request = request_with(secure=True)
    keep_session(request, Session("s1", {"user_name": "alice", "role": "user"}))
    assert b"Secure" in request.cookies[0].split(b"; ")


def test_the_session_the_request_named_sets_no_cookie_again():
    request = request_with(b"hpxd_session=s1")
    keep_session(request, Session("s1", {"user_name": "alice", "role": "user"}))
    assert request.cookies == []


def test_a_transient_guest_sets_no_cookie_and_clears_a_dead_one():
    fresh = request_with()
    keep_session(fresh, Session.transient_guest("guest"))
    assert fresh.cookies == []
    stale = request_with(b"hpxd_session=gone")
    keep_session(stale, Session.transient_guest("guest"))
    [cookie] = stale.cookies
    assert cookie.startswith(b"hpxd_session=;") and b"Max-Age=0" in cookie


def test_ending_the_session_clears_the_cookie():
    request = request_with(b"hpxd_session=s1")
    end_session(request)
    [cookie] = request.cookies
    assert cookie.startswith(b"hpxd_session=;") and b"Max-Age=0" in cookie and b"HttpOnly" in cookie


# -- a real service ---------------------------------------------------------------------

def make_app():
    task = Task("websessions")

    @task.function
    def add(item, a, b):
        return a + b

    @task.function
    def remember(item, value):
        item.session.data["value"] = value
        return value

    return task


async def started(tmp_path, backend, **sessions):
    raw = {"server": {"data_dir": str(tmp_path / "data"), "shutdown_timeout": 2},
           "tcp": {"listen": ["tcp:0:interface=127.0.0.1"]},
           "web": {"listen": ["tcp:0:interface=127.0.0.1"], "allowed_origins": [ORIGIN]},
           "sessions": {"connection_grace_seconds": GRACE, "purge_interval_seconds": 1,
                        **sessions},
           "auth": {"failed_login_delay": 0.05},
           "backend": backend,
           "users": [{"name": "alice", "password_hash": hash_password(PASSWORD, log2_n=10),
                      "role": "user"}]}
    service = await start_service(raw, make_app())
    service.web_port = [a.port for d in service.doors if d.name == "web" for a in d.addresses()][0]
    return service


@pytest_twisted.async_yield_fixture
async def service(tmp_path, backend):
    svc = await started(tmp_path, backend)
    yield svc
    await svc.stopService()


async def stored_sessions(service):
    """How many sessions the node's store holds now (expired ones gone)."""
    store = service.node.sessions
    if hasattr(store, "purge"):  # memory
        store.purge()
        return len(store)
    keys = await store.link.run("execute_command", "KEYS", "hpxd:session:*")
    return len(keys)


async def http(service, method, path, body=None, cookie=None, origin=None, content_type=None):
    """``(status, JSON body, Set-Cookie headers)``."""
    from twisted.internet import reactor
    from twisted.web.client import FileBodyProducer
    from io import BytesIO
    headers = Headers({})
    if cookie:
        headers.setRawHeaders(b"cookie", [b"hpxd_session=" + cookie.encode()])
    if origin:
        headers.setRawHeaders(b"origin", [origin.encode()])
    producer = None
    if body is not None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setRawHeaders(b"content-type", [content_type or b"application/json"])
        producer = FileBodyProducer(BytesIO(raw))
    response = await Agent(reactor).request(
        method, f"http://127.0.0.1:{service.web_port}{path}".encode(), headers, producer)
    answer = await readBody(response)
    cookies = response.headers.getRawHeaders(b"set-cookie") or []
    return response.code, json.loads(answer) if answer else None, cookies


def cookie_value(set_cookie):
    return set_cookie.split(b";")[0].split(b"=", 1)[1].decode()


# -- transient guests ---------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_a_thousand_cookie_less_requests_store_no_session(service):
    before = await stored_sessions(service)
    for _ in range(1000):
        status, body, cookies = await http(service, b"GET", "/session")
        assert (status, body, cookies) == (200, {"user": None, "role": "guest"}, [])
    assert await stored_sessions(service) == before


@pytest_twisted.ensureDeferred
async def test_a_transient_guest_is_stored_once_a_call_gives_it_data(service):
    node = service.node
    untouched = node.login.transient_guest()
    assert await node.dispatcher.call(untouched, "add", [1, 2]) == 3
    assert untouched.transient
    given = node.login.transient_guest()
    assert await node.dispatcher.call(given, "remember", ["x"]) == "x"
    assert not given.transient
    stored = await node.sessions.get(given.id)
    assert stored.data == {"value": "x"} and stored.user_name is None
    with pytest.raises(errors.SessionExpired):
        await node.sessions.get(untouched.id)


# -- /session: log in and out over HTTP -------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_log_in_over_http_then_the_cookie_is_the_user(service):
    status, body, [set_cookie] = await http(service, b"POST", "/session",
                                            {"user": "alice", "password": PASSWORD})
    assert (status, body) == (200, {"user": "alice", "role": "user"})
    assert b"HttpOnly" in set_cookie and b"SameSite=lax" in set_cookie and b"Path=/" in set_cookie
    session_id = cookie_value(set_cookie)
    assert (await http(service, b"GET", "/session", cookie=session_id))[:2] == (
        200, {"user": "alice", "role": "user"})
    # the page's WebSocket is alice's from its upgrade on
    wire = await ws_upgrade(service, cookie=session_id)
    client = WsClient(wire)
    try:
        [answer] = await client._ask("session", None)
        assert answer == {"session": session_id, "user": "alice", "role": "user"}
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_a_form_post_logs_in_too(service):
    status, body, cookies = await http(
        service, b"POST", "/session", b"user=alice&password=" + PASSWORD.encode(),
        content_type=b"application/x-www-form-urlencoded")
    assert (status, body) == (200, {"user": "alice", "role": "user"}) and len(cookies) == 1


@pytest_twisted.ensureDeferred
async def test_a_multipart_form_post_logs_in_too(service):
    body = (b"--b0\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nalice\r\n"
            b"--b0\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n"
            + PASSWORD.encode() + b"\r\n--b0--\r\n")
    status, answer, cookies = await http(service, b"POST", "/session", body,
                                         content_type=b"multipart/form-data; boundary=b0")
    assert (status, answer) == (200, {"user": "alice", "role": "user"}) and len(cookies) == 1
    status, answer, cookies = await http(service, b"POST", "/session", body[:40],
                                         content_type=b"multipart/form-data; boundary=b0")
    assert (status, answer["code"], cookies) == (400, 410, [])


@pytest.mark.parametrize("body, code", [
    ({"user": "alice", "password": "wrong"}, 411), ({"user": "alice"}, 412),
    ([1, 2], 412), (b"{not json", 900),
])
@pytest_twisted.ensureDeferred
async def test_a_refused_login_sets_no_cookie(service, body, code):
    status, answer, cookies = await http(service, b"POST", "/session", body)
    assert answer["code"] == code and status == errors.ERROR_TABLE[code].http_status
    assert cookies == []


@pytest_twisted.ensureDeferred
async def test_log_out_over_http_ends_the_session_everywhere(service):
    _, _, [set_cookie] = await http(service, b"POST", "/session",
                                    {"user": "alice", "password": PASSWORD})
    session_id = cookie_value(set_cookie)
    status, body, [cleared] = await http(service, b"DELETE", "/session", cookie=session_id)
    assert (status, body) == (200, {"user": None}) and b"Max-Age=0" in cleared
    with pytest.raises(errors.SessionExpired):
        await service.node.sessions.get(session_id)


@pytest_twisted.ensureDeferred
async def test_session_takes_get_post_and_delete_only(service):
    status, body, _ = await http(service, b"PUT", "/session")
    assert status == 405 and body["code"] == 418


# -- the one Origin check, on a resource other than /ws ------------------------------------

@pytest_twisted.ensureDeferred
async def test_a_state_changing_request_from_a_foreign_origin_is_refused(service):
    login = {"user": "alice", "password": PASSWORD}
    for origin in ("http://evil.example.com", "null", ORIGIN + ".evil.example.com"):
        status, body, cookies = await http(service, b"POST", "/session", login, origin=origin)
        assert status == 403 and body["code"] == 406 and "allowed_origins" in body["error"]
        assert cookies == []
    assert (await http(service, b"DELETE", "/session", origin="http://evil.example.com"))[0] == 403
    # an allowed Origin, and no Origin at all (not a browser), go on
    assert (await http(service, b"POST", "/session", login, origin=ORIGIN))[0] == 200
    assert (await http(service, b"POST", "/session", login))[0] == 200
    # reading is no change: any Origin may
    assert (await http(service, b"GET", "/session", origin="http://evil.example.com"))[0] == 200


# -- guest sessions of connections ---------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_a_thousand_tcp_guest_handshakes_leave_no_session(service):
    before = await stored_sessions(service)
    for _ in range(20):  # twenty rounds of fifty at once
        clients = await defer.gatherResults([defer.ensureDeferred(TcpClient.connect(service))
                                             for _ in range(50)])
        for client in clients:
            await client.guest()
            assert (await client.call("add", [1, 2])).value == 3
        await defer.gatherResults([client.close() for client in clients])
    await wait_until(lambda: not service.node.hub.clients())
    await sleep(GRACE * 2)
    assert await stored_sessions(service) == before


@pytest_twisted.ensureDeferred
async def test_a_tcp_guest_session_given_data_and_a_users_session_outlive_the_connection(
        service):
    guest, user = await TcpClient.connect(service), await TcpClient.connect(service)
    kept_guest = await guest.guest()
    await guest.call("remember", ["x"])
    kept_user = await user.login("alice", PASSWORD)
    await guest.close()
    await user.close()
    await sleep(GRACE * 2)
    assert (await service.node.sessions.get(kept_guest)).data == {"value": "x"}
    assert (await service.node.sessions.get(kept_user)).user_name == "alice"


@pytest_twisted.ensureDeferred
async def test_guests_past_the_cap_are_refused_and_users_still_log_in(tmp_path, backend):
    service = await started(tmp_path, backend, max_guest_sessions=3)
    clients = []
    try:
        for _ in range(3):
            clients.append(await TcpClient.connect(service))
            await clients[-1].guest()
        clients.append(await TcpClient.connect(service))
        with pytest.raises(DoorError) as refused:
            await clients[-1].guest()
        assert refused.value.code == 417 and "max_guest_sessions" in refused.value.msg
        assert await clients[-1].login("alice", PASSWORD)  # users are never refused for guests
        # a web request's guest given data counts too, and is refused the same way
        with pytest.raises(errors.TooManyGuests):
            await service.node.dispatcher.call(service.node.login.transient_guest(),
                                               "remember", ["x"])
        # once a guest's connection has closed and the grace passed, there is room again
        await clients[0].close()
        await sleep(GRACE * 2)
        await service.node.sessions.create({"user_name": None, "role": "guest"})
    finally:
        for client in clients:
            await client.close()
        await service.stopService()


# -- the WebSocket upgrade with a cookie ------------------------------------------------

async def ws_upgrade(service, cookie):
    from twisted.internet import reactor
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{service.web_port}/ws",
                                     headers={"Cookie": f"hpxd_session={cookie}"})
    factory.protocol = _WsWire
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", service.web_port)
    wire = await endpoint.connect(factory)
    await wire.opened.addTimeout(10, reactor)
    return wire


@pytest_twisted.ensureDeferred
async def test_an_unknown_cookie_at_upgrade_is_a_guest(service):
    client = WsClient(await ws_upgrade(service, "no-such-session"))
    try:
        [answer] = await client._ask("session", None)
        assert answer["user"] is None and answer["session"] != "no-such-session"
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_a_cookie_that_cannot_be_read_refuses_the_upgrade_with_503(tmp_path, redis_server):
    service = await started(tmp_path, {"kind": "redis", "redis_url": redis_server.url})
    try:
        _, _, [set_cookie] = await http(service, b"POST", "/session",
                                        {"user": "alice", "password": PASSWORD})
        redis_server.stop()
        with pytest.raises(ConnectionError) as refused:
            await ws_upgrade(service, cookie_value(set_cookie))
        assert "503" in str(refused.value), str(refused.value)  # not a guest's connection
    finally:
        await service.stopService()


def sleep(seconds):
    from twisted.internet import reactor, task
    return task.deferLater(reactor, seconds, lambda: None)

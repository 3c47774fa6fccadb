"""The contract every door keeps, checked door by door (and on both backends).

A real ``HpxdService`` runs in this process on real sockets (port 0), so a
test can hold a function's Deferred and read the server's log events. Each
door's client (tests/door_clients.py) speaks that door's own wire format;
the WebSocket and HTTP doors join by adding theirs to ``CLIENTS``.
"""

import functools

import pytest
import pytest_twisted
from twisted.internet import defer, task as ttask
from twisted.logger import formatEvent, globalLogPublisher

from hpxd.app import Task
from hpxd.core.control import QUIT
from hpxd.core.passwords import hash_password
from tests.door_clients import CLIENTS, DoorError
from tests.support import start_service

PASSWORDS = {"alice": "alice-pw-1", "root": "root-pw-1"}
ROLES = {"alice": "user", "root": "admin"}
LIFESPAN = 1  # seconds: the expiry test waits this long


def make_app(pending):
    task = Task("conf")

    @task.function
    def add(item, a, b=0):
        return a + b

    @task.function
    def whoami(item):
        return [item.session.user_name, item.session.role, item.environ["door"]]

    @task.function
    def count(item):
        item.session.data["n"] = item.session.data.get("n", 0) + 1
        return item.session.data["n"]

    @task.function
    def stream(item, n):
        for i in range(n):
            item.send(i)
        return "done"

    @task.function
    def refuse(item, why):
        raise item.error(why)

    @task.function
    def crash(item):
        raise RuntimeError("secret detail /etc/shadow")

    @task.function
    def announce(item, text):
        return item.broadcast("news", {"text": text}).addCallback(lambda _: True)

    @task.function
    def block(item):
        d = defer.Deferred()
        pending.append(d)
        return d

    @task.function(requires="edit")
    def change(item):
        return "changed"

    @task.function
    def not_a_number(item):  # NaN is no JSON: a client's parser refuses it
        return {"x": float("nan")}

    @task.function
    def deep(item, depth):  # too deep for any JSON encoder: the app's bug
        value = []
        for _ in range(depth):
            value = [value]
        return value

    return task


@functools.lru_cache(maxsize=None)
def users():
    return [{"name": n, "password_hash": hash_password(pw, log2_n=10), "role": ROLES[n]}
            for n, pw in PASSWORDS.items()]


@pytest.fixture(params=sorted(CLIENTS))
def door(request):
    return request.param


class Server:
    def __init__(self, service, pending, exits, client_class):
        self.service, self.pending, self.exits = service, pending, exits
        self.client_class = client_class
        self.clients = []

    @property
    def node(self):
        return self.service.node

    async def client(self):
        client = await self.client_class.connect(self.service)
        self.clients.append(client)
        return client


@pytest_twisted.async_yield_fixture
async def server(door, backend, tmp_path):
    raw = {
        "server": {"name": "conformance", "data_dir": str(tmp_path), "shutdown_timeout": 5},
        "tcp": {"listen": ["tcp:0:interface=127.0.0.1"] if door == "tcp" else []},
        "web": {"listen": ["tcp:0:interface=127.0.0.1"] if door == "ws" else []},
        "sessions": {"lifespan_seconds": LIFESPAN},
        "auth": {"failed_login_delay": 0.05},
        "backend": backend,
        "users": users(),
    }
    pending = []
    service = await start_service(raw, make_app(pending))
    srv = Server(service, pending, service.exits, CLIENTS[door])
    yield srv
    for d in srv.pending:
        if not d.called:
            d.callback(None)
    for client in srv.clients:
        await client.close()
    await service.stopService()


def sleep(seconds):
    from twisted.internet import reactor
    return ttask.deferLater(reactor, seconds, lambda: None)


async def raises(code, awaitable):
    with pytest.raises(DoorError) as caught:
        await awaitable
    assert caught.value.code == code, caught.value
    return caught.value


# -- authentication ------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_guest(server, door):
    client = await server.client()
    await client.guest()
    assert (await client.call("whoami")).value == [None, "guest", door]


@pytest_twisted.ensureDeferred
async def test_login(server, door):
    client = await server.client()
    await client.login("alice", PASSWORDS["alice"])
    assert (await client.call("whoami")).value == ["alice", "user", door]


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_411_and_logged_once_with_user_and_peer(server):
    client = await server.client()
    lines = []

    def observe(event):
        if event.get("log_namespace", "").startswith("hpxd"):
            lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    try:
        await raises(411, client.login("alice", "not-her-password"))
    finally:
        globalLogPublisher.removeObserver(observe)
    assert len(lines) == 1, lines
    [line] = lines
    assert "'alice'" in line and client.peer in line
    assert "not-her-password" not in line
    try:  # not logged in: no session (TCP) or still a guest (/ws, guests allowed)
        assert (await client.call("whoami")).value[:2] == [None, "guest"]
    except DoorError as e:
        assert e.code == 407


@pytest_twisted.ensureDeferred
async def test_attach_to_a_session_made_by_another_connection(server):
    first = await server.client()
    session_id = await first.login("alice", PASSWORDS["alice"])
    assert (await first.call("count")).value == 1
    second = await server.client()
    await second.attach(session_id)
    assert (await second.call("whoami")).value[:2] == ["alice", "user"]
    assert (await second.call("count")).value == 2  # the same session's data


@pytest_twisted.ensureDeferred
async def test_attach_to_an_unknown_session_is_408(server):
    client = await server.client()

    async def attach_and_call():
        await client.attach("no-such-session")
        await client.call("whoami")
    await raises(408, attach_and_call())


@pytest_twisted.ensureDeferred
async def test_logout_ends_the_session_everywhere(server):
    first = await server.client()
    session_id = await first.guest()
    other = await server.client()
    await other.attach(session_id)
    assert (await other.call("add", kwargs={"a": 1})).value == 1
    await first.logout()
    await raises(408, other.call("add", kwargs={"a": 1}))


@pytest_twisted.ensureDeferred
async def test_session_expiry(server):
    client = await server.client()
    await client.guest()
    assert (await client.call("add", [1, 1])).value == 2
    await sleep(LIFESPAN + 0.3)
    await raises(408, client.call("add", [1, 1]))


# -- calls ---------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_positional_and_keyword_arguments(server):
    client = await server.client()
    await client.guest()
    assert (await client.call("add", [1, 2])).value == 3
    assert (await client.call("add", kwargs={"a": 1, "b": 2})).value == 3
    assert (await client.call("add", [1], {"b": 5})).value == 6
    assert (await client.call("add", [7])).value == 7  # b's default


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("args, kwargs", [
    ([], {}), ([1, 2, 3], {}), ([1], {"a": 1}), (None, {"a": 1, "c": 2}),
])
async def test_arguments_that_do_not_bind_are_413_naming_the_function(server, args, kwargs):
    client = await server.client()
    await client.guest()
    error = await raises(413, client.call("add", args, kwargs))
    assert error.msg.startswith("add: ")


@pytest_twisted.ensureDeferred
async def test_unknown_function_is_404(server):
    client = await server.client()
    await client.guest()
    for fname in ("nope", "add.nope", "__init__", "catalog..x"):
        await raises(404, client.call(fname))


@pytest_twisted.ensureDeferred
async def test_privilege_denied_is_406(server):
    guest = await server.client()
    await guest.guest()
    await raises(406, guest.call("change"))
    alice = await server.client()
    await alice.login("alice", PASSWORDS["alice"])
    assert (await alice.call("change")).value == "changed"


@pytest_twisted.ensureDeferred
async def test_error_codes_of_the_one_table(server):
    client = await server.client()
    await client.guest()
    error = await raises(400, client.call("refuse", ["not today"]))
    assert error.msg == "not today"
    error = await raises(100, client.call("crash"))
    assert error.msg == "internal server error" and "shadow" not in error.msg
    assert (await client.call("add", [2, 2])).value == 4  # the connection goes on


@pytest_twisted.ensureDeferred
async def test_nan_is_no_json_so_it_is_100_and_the_connection_goes_on(server):
    client = await server.client()
    await client.guest()
    error = await raises(100, client.call("not_a_number"))
    assert error.msg == "the function returned a value that is not JSON"
    assert (await client.call("add", [2, 2])).value == 4


@pytest_twisted.ensureDeferred
async def test_a_value_too_deep_for_json_is_100_and_the_connection_goes_on(server):
    client = await server.client()
    await client.guest()
    error = await raises(100, client.call("deep", [100000]))
    assert error.msg == "the function returned a value that is not JSON"
    assert (await client.call("add", [2, 2])).value == 4


@pytest_twisted.ensureDeferred
async def test_values_sent_with_item_send(server):
    client = await server.client()
    await client.guest()
    result = await client.call("stream", [3])
    assert (result.value, result.sent) == ("done", [0, 1, 2])


# -- pushes --------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_push_to_one_session(server):
    alice = await server.client()
    alice_session = await alice.login("alice", PASSWORDS["alice"])
    alice_again = await server.client()
    await alice_again.attach(alice_session)
    guest = await server.client()
    await guest.guest()
    await server.node.hub.send_to_session(alice_session, "note", {"for": "alice"})
    for client in (alice, alice_again):
        assert await client.next_push() == ("note", {"for": "alice"}, None)
    await guest.call("add", [0])  # a round trip: anything pushed to it is here by now
    assert guest.pushes == []


@pytest_twisted.ensureDeferred
async def test_broadcast_reaches_every_client_including_the_caller(server):
    caller, other = await server.client(), await server.client()
    await caller.guest()
    await other.guest()
    assert (await caller.call("announce", ["hello"])).value is True
    assert await caller.next_push() == ("news", {"text": "hello"}, None)
    assert await other.next_push() == ("news", {"text": "hello"}, None)


# -- quitting ------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_serverquit_answers_the_call_in_flight_then_pushes_the_command(server):
    busy = await server.client()
    await busy.guest()
    busy.start_call("block")
    while not server.pending:  # the call is running
        await sleep(0.01)
    admin = await server.client()
    await admin.login("root", PASSWORDS["root"])
    admin.command(QUIT)
    await sleep(0.2)  # the quit sequence waits for the call
    assert server.exits == []
    server.pending[0].callback("finished")
    assert await busy.events() == [("reply", ["finished"]), ("command", QUIT)]
    assert await admin.events() == [("command", QUIT)]
    assert server.exits == [0]


@pytest_twisted.ensureDeferred
async def test_a_call_that_never_ends_cannot_hold_the_quit_past_its_timeouts(server, door):
    server.service.config.server.shutdown_timeout = 0.3
    lines = []

    def observe(event):
        if event.get("log_namespace", "").startswith("hpxd"):
            lines.append(formatEvent(event))
    busy = await server.client()
    await busy.guest()
    busy.start_call("block")
    while not server.pending:
        await sleep(0.01)
    admin = await server.client()
    await admin.login("root", PASSWORDS["root"])
    globalLogPublisher.addObserver(observe)
    try:
        admin.command(QUIT)
        # The call never answers: after 0.3 s the command goes out anyway,
        # after 0.3 s more the connection still busy with it is dropped.
        assert await busy.events() == [("command", QUIT)]
        while not server.exits:
            await sleep(0.01)
    finally:
        globalLogPublisher.removeObserver(observe)
    assert server.exits == [0]
    assert any("calls still running after 0.3 s" in line for line in lines), lines
    if door == "tcp":  # a WebSocket closes (1001) mid-call; an HPX reply is owed first
        assert any("connections still open after 0.3 s" in line for line in lines), lines

"""hpxd/core/doorkit.py on its own: a fake door protocol, the memory
backend and a fake clock (the doors' own suites run it over real sockets)."""

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from hpxd.backends.memory import MemoryHub, MemoryLeases, MemoryScope, MemorySessionStore
from hpxd.core import errors
from hpxd.core.app import Task
from hpxd.core.auth import Authenticator, Role, User
from hpxd.core.clients import ClientNames
from hpxd.core.doorkit import NO_ANSWER, DoorKit, repaired
from hpxd.core.hub import PUSH, HubMessage
from hpxd.core.node import Node
from hpxd.core.passwords import hash_password

GRACE = 10
USERS = {"alice": User("alice", hash_password("pw", log2_n=10), "user")}
ROLES = {"guest": Role("guest", privileges={"*": frozenset({"view"})}),
         "user": Role("user", privileges={"*": frozenset({"view"})})}


class Door:
    """What the kit needs of a door's protocol: ``deliver``."""

    def __init__(self):
        self.delivered = []

    def deliver(self, message):
        self.delivered.append(message)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def node(clock):
    task = Task("kit")

    @task.function
    def remember(item, value):
        item.session.data["value"] = value

    auth = Authenticator(ROLES, USERS, True, "guest", 0, clock)
    hub = MemoryHub()
    names = ClientNames(MemoryLeases(clock), hub, 10, clock)
    return Node("kit-node", task, auth, MemorySessionStore(60, clock), MemoryScope(), hub,
                client_names=names, connection_grace=GRACE)


def opened(kit, peer="10.0.0.1:5000"):
    conn = kit.connect(Door(), peer)
    conn.open()
    return conn


def alive(node, session_id):
    try:
        node.sessions.get_now(session_id)
        return True
    except errors.SessionExpired:
        return False


def test_a_connection_is_the_hubs_client_and_its_doors_traffic(node, clock):
    kit = DoorKit(node, "tcp", clock=clock)
    conn = opened(kit)
    assert node.hub.clients() == [conn]
    assert conn.environ == {"door": "tcp", "peer": "10.0.0.1:5000", "client_id": conn.client_id}
    conn.bytes_in, conn.bytes_out = 10, 20
    assert (kit.traffic().connections, kit.traffic().bytes_in) == (1, 10)
    node.hub.deliver(HubMessage(PUSH, "hello"))
    assert [m.action for m in conn.protocol.delivered] == ["hello"]
    conn.close()
    traffic = kit.traffic()
    assert (traffic.connections, traffic.bytes_in, traffic.bytes_out) == (0, 10, 20)
    assert node.hub.clients() == []
    assert node.dispatcher.metrics.doors["tcp"] == kit.traffic


def test_a_connection_never_opened_is_not_counted_when_it_closes(node, clock):
    kit = DoorKit(node, "ws", clock=clock)
    conn = kit.connect(Door(), "1.2.3.4:1")  # a WebSocket whose handshake failed
    conn.close()
    assert kit.traffic().connections == 0 and node.hub.clients() == []


@pytest_twisted.ensureDeferred
async def test_an_empty_guest_session_ends_with_its_connection_plus_the_grace(node, clock):
    kit = DoorKit(node, "tcp", clock=clock)
    conn = opened(kit)
    guest = await conn.guest()
    assert conn.session_id == guest.id
    conn.close()
    clock.advance(GRACE - 1)
    clock.advance(2)
    assert not alive(node, guest.id)


@pytest_twisted.ensureDeferred
async def test_a_users_session_and_a_guest_given_data_outlive_the_connection(node, clock):
    kit = DoorKit(node, "tcp", clock=clock)
    conn = opened(kit)
    user = await conn.login("alice", "pw")
    other = opened(kit)
    guest = await other.guest()
    await node.dispatcher.call(guest, "remember", ["x"])
    conn.close()
    other.close()
    clock.advance(GRACE + 1)
    assert alive(node, user.id) and alive(node, guest.id)


@pytest_twisted.ensureDeferred
async def test_on_a_door_whose_sessions_end_with_the_connection_a_login_ends_too(node, clock):
    kit = DoorKit(node, "ws", sessions_end_with_connection=True, clock=clock)
    conn = opened(kit)
    user = await conn.login("alice", "pw")
    conn.close()
    clock.advance(GRACE + 1)
    assert not alive(node, user.id)


@pytest_twisted.ensureDeferred
async def test_a_session_another_connection_uses_is_not_released(node, clock):
    kit = DoorKit(node, "tcp", clock=clock)
    first, second = opened(kit), opened(kit)
    guest = await first.guest()
    second.session_now(guest.id)  # sent in the envelope of a second connection
    first.close()
    clock.advance(GRACE + 1)
    assert alive(node, guest.id)


@pytest_twisted.ensureDeferred
async def test_an_attached_session_is_not_the_connections_to_release(node, clock):
    kit = DoorKit(node, "ws", sessions_end_with_connection=True, clock=clock)
    made_elsewhere = await node.login.guest("elsewhere")
    conn = opened(kit)
    await conn.attach(made_elsewhere.id)
    conn.close()
    clock.advance(GRACE + 1)
    assert alive(node, made_elsewhere.id)


@pytest_twisted.ensureDeferred
async def test_built_ins(node, clock):
    kit = DoorKit(node, "ws", clock=clock)
    conn = opened(kit)
    me = await conn.built_in("session", None)
    assert me["user"] is None and me["role"] == "guest" and conn.session_id == me["session"]
    assert [f["name"] for f in await conn.built_in("functions", None)] == ["remember"]
    assert await conn.built_in("introduce_self", {"client_id": "desk-1"}) is NO_ANSWER
    assert conn.client_id == "desk-1" and conn.environ["client_id"] == "desk-1"
    logged_in = await conn.built_in("login", {"user": "alice", "password": "pw"})
    assert logged_in["user"] == "alice"
    assert (await node.session_of("desk-1")).user_name == "alice"  # the name follows the login
    assert await conn.built_in("logout", None) is None
    assert conn.session_id is None and await node.session_of("desk-1") is None
    with pytest.raises(errors.AuthRequired):
        await conn.built_in("logout", None)
    with pytest.raises(errors.AuthRequired):
        await conn.built_in("serverquit", None)  # no session at all
    await conn.built_in("session", None)
    with pytest.raises(errors.PermissionDenied):
        await conn.built_in("serverquit", None)  # a guest: no server commands


def test_repaired_turns_what_is_not_json_into_error_100():
    assert repaired([1, "a"], "f") == ([1, "a"], None)
    value, error = repaired({1, 2}, "f")
    assert value is None and error.code == 100 and "not JSON" in error.msg

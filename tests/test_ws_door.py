"""What the WebSocket door has beyond the door contract: the built-in
``functions`` and ``introduce_self`` actions, on both backends, with a real
service in this process and autobahn clients on real sockets."""

import pytest
import pytest_twisted
from twisted.internet import task as ttask

from hpxd.app import Task
from hpxd.core.passwords import hash_password
from tests.door_clients import DoorError, WsClient
from tests.support import start_service, wait_until

PASSWORD = "alice-pw-1"
GRACE = 0.5  # seconds a connection-bound session outlives its last connection


def make_app():
    task = Task("wsdoor")

    @task.function
    def add(item, a, b=0):
        """a + b"""
        return a + b

    @task.function(requires="edit")
    def change(item, *values):
        return "changed"

    catalog = task.item("catalog")

    @catalog.function(requires="view")
    def list(item, limit=10):
        return []

    return task


@pytest_twisted.async_yield_fixture
async def service(backend, tmp_path):
    raw = {
        "server": {"name": "wsdoor", "data_dir": str(tmp_path), "shutdown_timeout": 5},
        "tcp": {"listen": []},
        "web": {"listen": ["tcp:0:interface=127.0.0.1"]},
        "auth": {"failed_login_delay": 0.05},
        "sessions": {"connection_grace_seconds": GRACE},
        "backend": backend,
        "roles": {"guest": {"privileges": {"*": ["view"], "catalog": []}},
                  "user": {"privileges": {"*": ["view", "edit"]}}},
        "users": [{"name": "alice", "password_hash": hash_password(PASSWORD, log2_n=10),
                   "role": "user"}],
    }
    svc = await start_service(raw, make_app())
    svc.test_clients = []
    yield svc
    for client in svc.test_clients:
        await client.close()
    await svc.stopService()


async def connect(service):
    client = await WsClient.connect(service)
    service.test_clients.append(client)
    return client


@pytest_twisted.ensureDeferred
async def test_functions_lists_what_the_session_may_call(service):
    client = await connect(service)
    [guest_view] = await client._ask("functions", None)
    assert [f["name"] for f in guest_view] == ["add"]  # no edit, no catalog for a guest
    assert guest_view[0] == {"name": "add", "requires": "view", "doc": "a + b",
                             "parameters": [{"name": "a", "required": True},
                                            {"name": "b", "required": False}]}
    await client.login("alice", PASSWORD)
    [user_view] = await client._ask("functions", None)
    assert [f["name"] for f in user_view] == ["add", "catalog.list", "change"]
    change = next(f for f in user_view if f["name"] == "change")
    assert change["requires"] == "edit"
    assert change["parameters"] == [{"name": "values", "required": False}]


async def introduced(service, client, client_id):
    """introduce_self, as Igor sends it: on success the server answers
    nothing at all (no data, no close), so wait until the node knows the name."""
    client.start_call("introduce_self", kwargs={"client_id": client_id})
    await wait_until(lambda: client_id in {c.client_id for c in service.node.hub.clients()})


@pytest_twisted.ensureDeferred
async def test_introduce_self_names_the_connection_for_pushes(service):
    named, other = await connect(service), await connect(service)
    await named.guest()
    await other.guest()
    await introduced(service, named, "desk-1")
    await service.node.hub.send_to_client("desk-1", "hello", {"n": 1})
    assert await named.next_push() == ("hello", {"n": 1}, None)
    # the other connection got nothing: a call on it answers first
    assert (await other.call("add", [1, 2])).value == 3
    assert other.pushes == []


@pytest_twisted.ensureDeferred
async def test_a_client_id_taken_on_the_cluster_is_refused(service):
    first, second = await connect(service), await connect(service)
    await introduced(service, first, "desk-1")
    with pytest.raises(DoorError) as caught:
        await second._ask("introduce_self", {"client_id": "desk-1"})
    assert caught.value.code == 415 and "desk-1" in caught.value.msg
    # once the holder has gone, the name is free again
    await first.close()
    await introduced(service, second, "desk-1")


@pytest_twisted.ensureDeferred
async def test_introduce_self_answers_nothing_when_it_succeeds(service):
    """Igor's server sends no reply to introduce_self, and an Igor client
    has no handler for that stream: the next message on the connection is
    the answer to the next call."""
    client = await connect(service)
    await introduced(service, client, "desk-1")
    client.start_call("add", [1, 2])
    assert await client.wire.next() == {"streamId": client._streams, "data": 3}


@pytest.mark.parametrize("data", [None, [], {"client_id": ""}, {"client_id": 5},
                                  {"client_id": "x" * 200}, {"client_id": "a b"}])
@pytest_twisted.ensureDeferred
async def test_introduce_self_refuses_odd_ids(service, data):
    client = await connect(service)
    with pytest.raises(DoorError) as caught:
        await client._ask("introduce_self", data)
    assert caught.value.code == 413
    assert (await client.call("add", [1, 2])).value == 3  # still usable


@pytest_twisted.ensureDeferred
async def test_session_of_an_introduced_client(service):
    client = await connect(service)
    await client.login("alice", PASSWORD)
    await introduced(service, client, "desk-1")
    session = await service.node.session_of("desk-1")
    assert session is not None and session.user_name == "alice"
    assert await service.node.session_of("nobody") is None


def sleep(seconds):
    from twisted.internet import reactor
    return ttask.deferLater(reactor, seconds, lambda: None)


async def alive(service, session_id):
    """Whether the session lives (the look extends its lifespan)."""
    try:
        await service.node.sessions.get(session_id)
        return True
    except Exception:
        return False


@pytest_twisted.ensureDeferred
async def test_a_session_made_on_a_connection_ends_a_grace_after_it_closes(service):
    guest, user = await connect(service), await connect(service)
    guest_session = await guest.guest()
    user_session = await user.login("alice", PASSWORD)
    await guest.close()
    await user.close()
    # (no look in between: a look is a use, and a use restores the lifespan)
    await sleep(GRACE * 2)
    assert not await alive(service, guest_session)
    assert not await alive(service, user_session)


@pytest_twisted.ensureDeferred
async def test_a_session_in_use_by_another_connection_is_kept(service):
    first = await connect(service)
    session_id = await first.guest()
    second = await connect(service)
    await second.attach(session_id)
    await first.close()
    await sleep(GRACE * 2)
    assert (await second.call("add", [1, 2])).value == 3  # still its session
    assert second.session == session_id and await alive(service, session_id)


@pytest_twisted.ensureDeferred
async def test_a_session_used_again_within_the_grace_lives_on(service):
    first = await connect(service)
    session_id = await first.guest()
    await first.close()
    await sleep(GRACE / 3)
    again = await connect(service)
    await again.attach(session_id)  # a reconnecting browser
    await again.close()  # attached, not made here: its closing does not bind it
    await sleep(GRACE * 2)
    assert await alive(service, session_id)


@pytest_twisted.ensureDeferred
async def test_a_session_attached_from_elsewhere_is_not_bound_to_the_connection(service):
    made_elsewhere = await service.node.login.guest("tcp-peer")
    client = await connect(service)
    await client.attach(made_elsewhere.id)
    await client.close()
    await sleep(GRACE * 2)
    assert await alive(service, made_elsewhere.id)

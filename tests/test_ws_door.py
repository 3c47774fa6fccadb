"""What the WebSocket door has beyond the door contract: the built-in
``functions`` and ``introduce_self`` actions, on both backends, with a real
service in this process and autobahn clients on real sockets."""

import pytest
import pytest_twisted

from hpxd.app import Task
from hpxd.core.passwords import hash_password
from tests.door_clients import DoorError, WsClient
from tests.support import start_service

PASSWORD = "alice-pw-1"


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


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    if request.param == "redis":
        return {"kind": "redis", "redis_url": request.getfixturevalue("redis_server").url}
    return {"kind": "memory"}


@pytest_twisted.async_yield_fixture
async def service(backend, tmp_path):
    raw = {
        "server": {"name": "wsdoor", "data_dir": str(tmp_path), "shutdown_timeout": 5},
        "tcp": {"listen": []},
        "web": {"listen": ["tcp:0:interface=127.0.0.1"]},
        "auth": {"failed_login_delay": 0.05},
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


@pytest_twisted.ensureDeferred
async def test_introduce_self_names_the_connection_for_pushes(service):
    named, other = await connect(service), await connect(service)
    await named.guest()
    await other.guest()
    assert await named._ask("introduce_self", {"client_id": "desk-1"}) == []
    await service.node.hub.send_to_client("desk-1", "hello", {"n": 1})
    assert await named.next_push() == ("hello", {"n": 1}, None)
    # the other connection got nothing: a call on it answers first
    assert (await other.call("add", [1, 2])).value == 3
    assert other.pushes == []


@pytest_twisted.ensureDeferred
async def test_a_client_id_taken_on_the_cluster_is_refused(service):
    first, second = await connect(service), await connect(service)
    await first._ask("introduce_self", {"client_id": "desk-1"})
    with pytest.raises(DoorError) as caught:
        await second._ask("introduce_self", {"client_id": "desk-1"})
    assert caught.value.code == 415 and "desk-1" in caught.value.msg
    # once the holder has gone, the name is free again
    await first.close()
    await second._ask("introduce_self", {"client_id": "desk-1"})


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
    await client._ask("introduce_self", {"client_id": "desk-1"})
    session = await service.node.session_of("desk-1")
    assert session is not None and session.user_name == "alice"
    assert await service.node.session_of("nobody") is None

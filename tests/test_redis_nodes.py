"""Two real hpxd nodes (twistd) sharing one real redis-server."""

import time

import pytest

from hpxd.core.passwords import hash_password
from tests.support import RawClient, tcp_config

PASSWORD = "s3cret-admin"


@pytest.fixture(scope="module")
def admin_hash():
    return hash_password(PASSWORD)


@pytest.fixture
def two_nodes(daemons, redis_server, admin_hash):
    extra = (f'[backend]\nkind = "redis"\nredis_url = "{redis_server.url}"\n'
             '[auth]\nfailed_login_delay = 0.1\n')
    users = [("root", admin_hash, "admin"), ("ed", admin_hash, "user")]
    config = tcp_config(extra, users)
    return daemons(config, name="a"), daemons(config, name="b")


def connect(daemon, **login):
    client = RawClient(daemon.tcp_port)
    client.recv()  # greeting
    reply = client.call(login)
    assert reply["data"] == "Authenticated", reply
    return client, reply["session"]


def call(client, session, fname, **kwargs):
    reply = client.call([dict(fname=fname, **kwargs)], session=session)
    assert "error" not in reply, reply
    entry = reply["data"][0]
    assert "error" not in entry, entry
    return entry["data"]


def test_session_data_and_scope_are_shared(two_nodes):
    a, b = two_nodes
    on_a, session = connect(a, user="ed", password=PASSWORD)
    assert call(on_a, session, "count") == 1
    assert call(on_a, session, "remember", key="colour", value={"name": "teal"}) is True
    on_b = RawClient(b.tcp_port)
    on_b.recv()
    # the session made on A works on B, with the data A wrote
    assert call(on_b, session, "whoami") == {"user_name": "ed", "role": "user"}
    assert call(on_b, session, "count") == 2
    assert call(on_b, session, "recall", key="colour") == {"name": "teal"}
    assert call(on_a, session, "count") == 3


def test_broadcast_on_a_reaches_tcp_clients_of_b(two_nodes):
    a, b = two_nodes
    listener, _ = connect(b)
    sender, session = connect(a, user="ed", password=PASSWORD)
    time.sleep(0.2)
    assert call(sender, session, "announce", message="hello") is True
    expected = {"session": "", "name": "hpxd",
                "data": {"action": "announce", "data": {"message": "hello", "from": "ed"}}}
    assert listener.recv() == expected
    assert sender.recv() == expected  # after the reply, never before it


def test_serverquit_on_a_stops_only_a(two_nodes):
    a, b = two_nodes
    watcher_b, guest_session = connect(b)
    admin, session = connect(a, user="root", password=PASSWORD)
    admin.send("serverquit", session=session)
    assert admin.recv()["data"] == "serverquit"
    assert a.wait(20) == 0
    assert call(watcher_b, guest_session, "add", a=2, b=3) == 5
    fresh, s2 = connect(b)
    assert call(fresh, s2, "add", a=1, b=1) == 2


def test_redis_down_then_back(two_nodes, redis_server):
    a, b = two_nodes
    client_a, session = connect(a, user="ed", password=PASSWORD)
    client_b = RawClient(b.tcp_port)
    client_b.recv()
    redis_server.stop()
    time.sleep(0.5)
    for client in (client_a, client_b):
        started = time.monotonic()
        reply = client.call([{"fname": "count"}], session=session)
        assert reply["error"]["code"] == 504, reply
        assert time.monotonic() - started < 2
        reply = client.call({"user": "ed", "password": PASSWORD})
        assert reply["error"]["code"] == 504, reply
    assert a.proc.poll() is None and b.proc.poll() is None
    redis_server.start()
    deadline = time.monotonic() + 15
    while True:  # the nodes recover by themselves, without a restart
        reply = client_a.call({"user": "ed", "password": PASSWORD})
        reply_b = client_b.call({})
        if "error" not in reply and "error" not in reply_b:
            break
        assert time.monotonic() < deadline, (reply, reply_b)
        time.sleep(0.3)
    assert deadline - time.monotonic() > 5  # "within seconds"
    new_session = reply["session"]
    listener = RawClient(b.tcp_port)
    listener.recv()
    listener.call({})
    deadline = time.monotonic() + 10
    while True:  # the subscriber on B re-subscribed after its reconnect
        assert call(client_a, new_session, "announce", message="back") is True
        client_a.recv()  # its own push, after the reply
        listener.sock.settimeout(1)
        try:
            push = listener.recv()
            break
        except OSError:
            assert time.monotonic() < deadline
    assert push["data"]["action"] == "announce"
    for log in (a.log(), b.log()):
        assert log.count("fail with 504 until it returns") == 1, log  # each transition once
        assert log.count("is reachable") == 2, log


def test_a_broadcast_on_node_a_reaches_a_websocket_client_of_node_b(daemons, redis_server,
                                                                     admin_hash):
    import json

    from websockets.sync.client import connect as ws_connect
    extra = (f'[backend]\nkind = "redis"\nredis_url = "{redis_server.url}"\n'
             '[auth]\nfailed_login_delay = 0.1\n')
    web = '[web]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
    config = tcp_config(extra, [("ed", admin_hash, "user")]).replace("[web]\nlisten = []\n", web)
    a, b = daemons(config, name="a"), daemons(config, name="b")
    with ws_connect(f"ws://127.0.0.1:{b.web_port}/ws", open_timeout=5) as on_b:
        on_b.send(json.dumps({"streamId": 1, "action": "add", "data": [1, 1]}))
        assert [json.loads(on_b.recv(timeout=10)) for _ in range(2)][0]["data"] == 2
        on_a, session = connect(a, user="ed", password=PASSWORD)
        assert call(on_a, session, "announce", message="from A") is True
        push = json.loads(on_b.recv(timeout=10))
        assert push == {"streamId": None, "action": "announce",
                        "data": {"message": "from A", "from": "ed"}}
        on_a.close()

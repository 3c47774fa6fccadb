from tests.support import RawClient, tcp_config


def test_guest_add(daemons):
    daemon = daemons(tcp_config())
    client = RawClient(daemon.tcp_port)
    greeting = client.recv()
    assert greeting["data"]["guest_allowed"] is True
    reply = client.call({})
    assert reply["data"] == "Authenticated"
    reply = client.call([{"fname": "add", "a": 1, "b": 2}], session=reply["session"])
    assert reply["data"] == [{"fname": "add", "data": 3}]
    client.close()

"""Behind a load balancer: the haproxy: endpoint gives the door the real client address."""

from tests.support import RawClient, tcp_config


def test_proxy_protocol_gives_the_real_peer(daemons):
    config = tcp_config().replace('listen = ["tcp:0:', 'listen = ["haproxy:tcp:0:', 1)
    daemon = daemons(config)
    client = RawClient(daemon.tcp_port)
    client.send_bytes(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 7007\r\n")
    assert client.recv()["data"]["guest_allowed"] is True  # greeting after the header
    reply = client.call([{"fname": "add", "a": 1, "b": 1}])  # no session: 407, logged
    assert reply["error"]["code"] == 407
    session = client.call({})["session"]
    assert client.call([{"fname": "add", "a": 1, "b": 1}], session)["data"][0]["data"] == 2
    client.close()
    assert "for 203.0.113.7:5555" in daemon.log()


def test_sigterm_broadcasts_serverquit_and_stops(daemons):
    import signal
    daemon = daemons(tcp_config())
    client = RawClient(daemon.tcp_port)
    client.recv()
    client.call({})
    daemon.proc.send_signal(signal.SIGTERM)
    assert client.recv() == {"session": "", "name": "hpxd", "data": "serverquit"}
    assert client.closed_by_server()
    daemon.wait(20)
    client.close()


def test_a_port_in_use_stops_start_up_with_status_1(tmp_path):
    import socket

    import pytest

    from tests.support import Daemon
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tcp_config().replace("tcp:0:", f"tcp:{port}:", 1)
        daemon = Daemon(tmp_path, config)
        try:
            with pytest.raises(RuntimeError, match="exited 1"):
                daemon.start()
            assert "hpxd cannot start" in daemon.log()
        finally:
            daemon.stop()

"""The public PyPI client ``happypandax-client`` (unmodified) against a real daemon."""

import pytest
from happypandax_client import AuthMissingCredentials, AuthWrongCredentialsError, Client

import hpxd
from tests.support import Daemon
from tests.test_tcp_integration import PASSWORDS, SERVER_NAME, hpx_config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    daemon = Daemon(tmp_path_factory.mktemp("client"), hpx_config(), name="client")
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.fixture
def client(server):
    clients = []

    def make(**kwargs):
        c = Client("pytest", host="127.0.0.1", port=server.tcp_port, **kwargs)
        clients.append(c)
        assert c.connect()
        return c

    yield make
    for c in clients:
        c.close()


def call(c, fname, **kwargs):
    reply = c.send([dict(fname=fname, **kwargs)])
    assert "error" not in reply, reply
    assert reply["name"] == SERVER_NAME and reply["session"] == c.session
    [entry] = reply["data"]
    assert entry["fname"] == fname
    return entry


def test_guest(client):
    c = client()
    assert c.alive() and c.ready()
    assert c.version == {"core": list(hpxd.VERSION), "db": [0, 0, 0], "torrent": [0, 0, 0]}
    assert c.guest_allowed is True
    assert not c.accepted
    assert c.handshake() is True
    assert c.accepted and c.session
    assert call(c, "add", a=1, b=2) == {"fname": "add", "data": 3}
    entry = call(c, "catalog.test", a=1, b=2)
    assert entry["error"] == {"code": 400, "msg": "guests may not test"}
    assert call(c, "whoami")["data"] == {"user_name": None, "role": "guest"}


def test_user(client):
    c = client()
    assert c.handshake(user="alice", password=PASSWORDS["alice"]) is True
    assert call(c, "whoami")["data"] == {"user_name": "alice", "role": "user"}
    assert call(c, "catalog.test", a=1, b=2) == {"fname": "catalog.test", "data": 3}
    assert call(c, "remember", key="client-key", value=[1, 2])["data"] is True
    assert call(c, "recall", key="client-key")["data"] == [1, 2]
    # Several calls in one message: one answer each, in order.
    reply = c.send([{"fname": "add", "a": 1, "b": 1}, {"fname": "nope"},
                    {"fname": "echo", "value": "x"}])
    first, missing, last = reply["data"]
    assert first == {"fname": "add", "data": 2}
    assert missing["fname"] == "nope" and missing["error"]["code"] == 404
    assert last == {"fname": "echo", "data": "x"}


def test_admin(client):
    c = client()
    assert c.handshake(user="root", password=PASSWORDS["root"]) is True
    assert call(c, "whoami")["data"] == {"user_name": "root", "role": "admin"}


@pytest.mark.parametrize("user, password", [("alice", "wrong"), ("nobody", "whatever")])
def test_wrong_credentials_raise(client, user, password):
    c = client()
    with pytest.raises(AuthWrongCredentialsError):
        c.handshake(user=user, password=password)
    assert not c.accepted and c.alive()
    # The same connection can then log in properly.
    assert c.handshake(user="alice", password=PASSWORDS["alice"]) is True
    assert call(c, "add", a=2, b=2)["data"] == 4


def test_missing_password_raises(client):
    c = client()
    with pytest.raises(AuthMissingCredentials):
        c.handshake(user="alice", password="")


def test_request_handshake(client):
    c = client()
    assert c.handshake(user="alice", password=PASSWORDS["alice"]) is True
    first_session = c.session
    # What the server answers to "requestauth": the greeting.
    reply = c.send_raw({"session": "", "name": "pytest", "data": "requestauth"})
    assert reply == {"session": "", "name": SERVER_NAME,
                     "data": {"version": {"core": list(hpxd.VERSION), "db": [0, 0, 0],
                                          "torrent": [0, 0, 0]},
                              "guest_allowed": True}}
    # The client's own flow: requestauth, then a handshake with the last credentials.
    assert c.request_handshake() is True
    assert c.ready() and c.accepted
    assert c.session and c.session != first_session
    assert call(c, "whoami")["data"]["user_name"] == "alice"
    # And as a guest, explicitly.
    assert c.request_handshake(user=None, password=None) is True
    assert call(c, "whoami")["data"]["role"] == "guest"


def test_session_reused_by_a_second_client(client):
    first = client()
    assert first.handshake(user="alice", password=PASSWORDS["alice"]) is True
    assert call(first, "count")["data"] == 1
    second = client(session_id=first.session)  # reads the greeting, no handshake
    assert second.accepted
    assert call(second, "count")["data"] == 2
    assert call(second, "whoami")["data"]["user_name"] == "alice"


def test_unknown_session_is_refused(client):
    c = client(session_id="not-a-session")
    reply = c.send([{"fname": "add", "a": 1, "b": 2}])
    assert reply["error"]["code"] == 408
    assert reply.get("data") != "Authenticated"


def test_guest_serverquit_is_refused(server, client):
    c = client()
    assert c.handshake() is True
    for command in ("serverquit", 1, "ServerQuit"):
        reply = c.send(command)
        assert reply["error"]["code"] == 406, reply
    assert server.proc.poll() is None
    assert call(c, "add", a=1, b=2)["data"] == 3


class NamedContext:
    """What docs/operations.md shows: the client calls ``wrap_socket(sock)``
    without a server name; this adds it, so the host name is checked too."""

    def __init__(self, context, server_name):
        self.context, self.server_name = context, server_name

    def wrap_socket(self, sock):
        return self.context.wrap_socket(sock, server_hostname=self.server_name)


def test_the_public_client_over_tls(tmp_path):
    import ssl

    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.test_redis_tls import _cert, _write
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _write(tmp_path / "ca.pem", cert=_cert("test CA", "test CA", ca_key, ca_key, ca=True))
    cert = _write(tmp_path / "cert.pem", cert=_cert("localhost", "test CA", key, ca_key,
                                                    dns="localhost"))
    private = _write(tmp_path / "key.pem", key=key)
    config = hpx_config().replace(
        '"tcp:0:interface=127.0.0.1"',
        f'"ssl:0:interface=127.0.0.1:privateKey={private}:certKey={cert}"', 1)
    daemon = Daemon(tmp_path, config, name="tls").start()
    try:
        context = ssl.create_default_context(cafile=ca)
        c = Client("pytest", host="127.0.0.1", port=daemon.tcp_port,
                   ssl_context=NamedContext(context, "localhost"))
        assert c.connect()
        assert c.handshake()
        assert call(c, "add", a=2, b=3)["data"] == 5
        c.close()
        wrong = Client("pytest", host="127.0.0.1", port=daemon.tcp_port,
                       ssl_context=NamedContext(context, "elsewhere.example"))
        with pytest.raises(Exception, match="(?i)certificate|hostname"):
            wrong.connect()
    finally:
        daemon.stop()

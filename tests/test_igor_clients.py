"""An Igor client, unchanged, against a real ``twistd -n hpxd``.

What Igor's own integration suite (``igor/test/test_integration.py`` of
cezary986/igor) checks, with its client library (``websocket-client``), its
address (the root path, no ``/ws``) and an app like its server instance
(tests/igor_app.py): an action called with a string as its data, a
process's pushes to every client, and ``introduce_self``, which Igor's
server answers with nothing at all, so that the next messages a client
reads are the pushes meant for it. Each test reads until the message it
checks, as Igor's client does; process pushes may come first.
"""

import json

import pytest
import websocket  # websocket-client, the library Igor's tests use

from tests.support import Daemon, tcp_config

WEB = ('[web]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
       # websocket-client sends Origin: http://<host>:<port> of the URL
       'allowed_origins = ["http://127.0.0.1:*"]\n')
APP = '[app]\nmodule = "tests.igor_app"\n'


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    config = tcp_config(APP).replace('[web]\nlisten = []\n', WEB)
    d = Daemon(tmp_path_factory.mktemp("igor"), config, name="igor").start()
    yield d
    d.stop()


@pytest.fixture
def connect(daemon):
    opened = []

    def connect():
        ws = websocket.WebSocket()
        ws.settimeout(10)
        ws.connect(f"ws://127.0.0.1:{daemon.web_port}")  # the root path, as Igor's clients
        opened.append(ws)
        return ws

    yield connect
    for ws in opened:
        ws.close()


def receive(ws):
    return json.loads(ws.recv())


def next_of_stream(ws, stream):
    while True:
        message = receive(ws)
        if message.get("streamId") == stream:
            return message


def test_calling_a_handler_with_a_string(connect):
    ws = connect()
    ws.send(json.dumps({"streamId": "test_calling_handler", "data": "DATA", "action": "echo"}))
    result = next_of_stream(ws, "test_calling_handler")
    assert result == {"streamId": "test_calling_handler", "data": "DATA"}


@pytest.mark.parametrize("data", [42, 1.5, True, "", [1, 2], {"data": "x"}, None])
def test_data_of_any_json_type(connect, data):
    """A scalar is the one positional argument; a list is positional
    arguments, an object keyword arguments, null none (echo then needs one)."""
    ws = connect()
    ws.send(json.dumps({"streamId": 7, "data": data, "action": "echo"}))
    result = next_of_stream(ws, 7)
    if data is None:
        assert result["code"] == 413
    elif isinstance(data, list):
        assert result["code"] == 413  # two positional arguments for one parameter
    else:
        assert result == {"streamId": 7, "data": data["data"] if isinstance(data, dict) else data}


def test_a_process_pushes_to_every_client(connect):
    result = receive(connect())
    assert result == {"streamId": "test_process", "action": "tick", "data": "tack"}


def test_introduce_self_answers_nothing_and_names_the_client(connect):
    ws = connect()
    ws.send(json.dumps({"streamId": "introduce_self_stream_id",
                        "data": {"client_id": "CLIENT_1"}, "action": "introduce_self"}))
    # Igor's test reads ["data"] of each of the next messages: no message of
    # the introduce_self stream (no data, no close) may come.
    received = [receive(ws) for _ in range(5)]
    assert all(m["streamId"] == "test_process" for m in received), received
    special = [m for m in received if m["data"] != "tack"]
    assert special and special[0] == {"streamId": "test_process", "action": "tick",
                                      "data": "special_for_CLIENT_1"}


def test_a_push_to_one_client_reaches_no_other(connect):
    ws = connect()
    assert [receive(ws)["data"] for _ in range(5)] == ["tack"] * 5


def test_a_refused_introduce_self_still_answers_its_error(connect):
    ws = connect()
    ws.send(json.dumps({"streamId": "i", "data": {"client_id": "no spaces"},
                        "action": "introduce_self"}))
    error = next_of_stream(ws, "i")
    assert error["code"] == 413 and error["error"]
    assert next_of_stream(ws, "i") == {"streamId": "i", "close": True}


def test_a_plain_get_of_the_root_is_still_the_console(daemon):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.web_port}/", timeout=10) as page:
        assert page.status == 200 and b"<html" in page.read().lower()

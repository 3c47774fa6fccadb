"""``/api``'s ``server`` requests answered at once (``Api.server_now``, as
the other doors call) or later, against a real ``twistd -n hpxd`` running
tests/http_app.py: the same replies either way, the cookie of a guest a
call gave data set once the call has ended, one write with a length."""

import json

import pytest

from tests.support import Daemon
from tests.web_http import JSON_TYPE, request, web_config


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    daemon = Daemon(tmp_path_factory.mktemp("api-now"), web_config("tests.http_app"),
                    name="api-now")
    try:
        yield daemon.start().web_port
    finally:
        daemon.stop()


def server(port, name, data, headers=None):
    body = json.dumps(["server", 1, None, [name, data], None])
    return request(port, "POST", "/api", body, {"content-type": "application/json",
                                                 **(headers or {})})


def test_an_answer_at_once_is_one_write_with_a_length(port):
    reply = server(port, "kinds", {"a": 1, "b": "x"})
    assert reply.status == 200 and reply.headers["content-type"] == JSON_TYPE
    assert reply.json()["result"]["data"] == [{"a": "int", "b": "str"}, ""]
    assert reply.headers["content-length"] == str(len(reply.raw))
    later = server(port, "slow", {"seconds": 0})
    assert later.json()["result"]["data"] == [0, ""]
    assert later.headers["content-length"] == str(len(later.raw))


def test_a_guest_given_data_after_a_wait_gets_its_cookie(port):
    reply = server(port, "remember_later", {"value": [7]})
    assert reply.json()["result"]["data"] == [[7], ""] and reply.cookie
    again = server(port, "recall", [], {"cookie": f"hpxd_session={reply.cookie}"})
    assert again.json()["result"]["data"] == [[7], ""]


def test_errors_in_the_envelope_either_way(port):
    for name, data, code in (("nothing", [], 404), ("kinds", [1], 413), ("odd", [], 100),
                             ("slow", {"seconds": "x"}, 100)):
        reply = server(port, name, data)
        answer = reply.json()
        assert reply.status == 200 and answer["code"] == code, (name, answer)
        assert answer["result"]["data"] == [None, answer["error"]]
        assert "Traceback" not in reply.text

"""``POST /ext/<path>`` against a real ``twistd -n hpxd``: the demo app's
handler (docs/http.md's curl examples), tests/http_app.py's, and an app
with none."""

import http.client
import json
import select

import pytest

from tests.support import Daemon
from tests.web_http import (JSON_TYPE, OTHER_TOKEN, TOKEN, log_in, request, web_config)

JSON = {"content-type": "application/json"}
BEARER = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    daemon = Daemon(tmp_path_factory.mktemp("ext"), web_config("hpxd.demo"), name="ext")
    try:
        yield daemon.start().web_port
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    daemon = Daemon(tmp_path_factory.mktemp("ext-app"), web_config("tests.http_app"),
                    name="ext-app")
    try:
        yield daemon.start().web_port
    finally:
        daemon.stop()


def post(port, path, params, headers=None):
    body = params if isinstance(params, (bytes, str)) else json.dumps(params)
    return request(port, "POST", path, body, {**JSON, **(headers or {})})


def assert_error(reply, status, code):
    assert reply.status == status, reply
    assert reply.headers["content-type"] == JSON_TYPE
    body = reply.json()
    assert body["code"] == code and isinstance(body["error"], str), body
    assert "Traceback" not in reply.text


# -- tokens -----------------------------------------------------------------------

def test_no_token_is_401(demo):
    reply = post(demo, "/ext/echo", {"x": 1})
    assert_error(reply, 401, 407)
    assert reply.headers["www-authenticate"].startswith("Bearer")


def test_a_wrong_token_is_401(demo):
    for header in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}",
                   TOKEN, f"Bearer {TOKEN.upper()}"):
        assert_error(post(demo, "/ext/echo", {"x": 1}, {"authorization": header}), 401, 407)


def test_a_right_token_gets_the_handlers_reply(demo):
    reply = post(demo, "/ext/echo", {"x": [1, "é"]}, BEARER)
    assert reply.status == 200 and reply.headers["content-type"] == JSON_TYPE
    answer = reply.json()
    assert answer["path"] == "echo" and answer["params"] == {"x": [1, "é"]}
    other = post(demo, "/ext/echo/", None, {"authorization": f"bearer {OTHER_TOKEN}"})
    assert other.json()["path"] == "echo" and other.json()["params"] is None


def test_a_public_path_needs_no_token(demo):
    reply = post(demo, "/ext/ping", [1, 2])
    assert (reply.status, reply.json()) == (200, {"pong": True, "params": [1, 2]})
    assert post(demo, "/ext/ping", [1], {"authorization": "Bearer wrong"}).json()["pong"]


def test_the_app_decides_what_a_path_means(demo):
    assert_error(post(demo, "/ext/nothing", {}, BEARER), 400, 400)  # the demo's item.error
    assert_error(post(demo, "/ext/nothing", {}), 401, 407)  # the token comes first


# -- refusals ---------------------------------------------------------------------

def test_a_foreign_origin_is_refused_even_with_a_token(demo):
    refused = post(demo, "/ext/echo", {}, {**BEARER, "origin": "http://evil.example"})
    assert_error(refused, 403, 406)
    assert_error(post(demo, "/ext/ping", {}, {"origin": "http://evil.example"}), 403, 406)
    own = post(demo, "/ext/ping", {}, {"origin": f"http://127.0.0.1:{demo}"})
    assert own.status == 200


def test_a_body_that_is_not_json_is_400_code_900(demo):
    for body in (b"", b"{", b"\xff", b"[" * 100000, b"{'a': 1}"):
        assert_error(post(demo, "/ext/ping", body), 400, 900)


def test_only_post(demo):
    reply = request(demo, "GET", "/ext/ping")
    assert_error(reply, 405, 418)
    assert reply.headers["allow"] == "POST"


def test_without_a_handler_a_tokened_request_is_404(tmp_path):
    daemon = Daemon(tmp_path, web_config("tests.igor_app"), name="no-ext")
    try:
        port = daemon.start().web_port
        assert_error(post(port, "/ext/ping", {}), 401, 407)
        assert_error(post(port, "/ext/ping", {}, BEARER), 404, 404)
    finally:
        daemon.stop()


def test_a_handlers_bug_is_500_code_100_without_internals(app):
    reply = post(app, "/ext/boom", {}, BEARER)
    assert_error(reply, 500, 100)
    assert "secret" not in reply.text
    assert_error(post(app, "/ext/odd", {}, BEARER), 500, 100)  # a value that is no JSON


# -- what the handler sees ------------------------------------------------------------

def test_the_handler_gets_path_params_and_a_read_only_environ(app):
    reply = post(app, "/ext/a/b%20c/", {"k": 1}, {**BEARER, "x-trace": "t1", "cookie": "a=b"})
    answer = reply.json()
    assert answer["path"] == "a/b c" and answer["params"] == {"k": 1}
    assert answer["door"] == "ext" and answer["token"] is True and answer["same"] is True
    assert answer["peer"].startswith("127.0.0.1:")
    assert answer["headers"]["x-trace"] == "t1"
    assert "authorization" not in answer["headers"] and "cookie" not in answer["headers"]
    assert answer["user"] is None  # a guest


def test_a_public_path_says_whether_a_token_came(app):
    assert post(app, "/ext/open", 1).json()["token"] is False
    assert post(app, "/ext/open/deep", 1, BEARER).json()["token"] is True
    assert_error(post(app, "/ext/open/other", 1), 401, 407)


def test_a_cookie_names_the_session_the_handler_runs_in(app):
    cookie = log_in(app)
    reply = post(app, "/ext/open", 1, {"cookie": f"hpxd_session={cookie}"})
    assert reply.json()["user"] == "alice"


def test_json_content_type_and_gzip_when_accepted(demo):
    for path, status in (("/ext/ping", 200), ("/ext/echo", 401)):
        plain = post(demo, path, ["y" * 2000])
        zipped = post(demo, path, ["y" * 2000], {"accept-encoding": "gzip"})
        assert plain.status == zipped.status == status
        assert plain.headers["content-type"] == zipped.headers["content-type"] == JSON_TYPE
        assert plain.headers.get("content-encoding") is None
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.json() == plain.json()


def test_a_long_handler_does_not_hold_up_others(app):
    slow = http.client.HTTPConnection("127.0.0.1", app, timeout=10)
    try:
        slow.request("POST", "/ext/slow", "2", {**JSON, **BEARER})
        assert post(app, "/ext/open", 1).json()["params"] == 1
        # The slow request is still running: nothing has come back for it yet.
        assert select.select([slow.sock], [], [], 0)[0] == []
        answer = slow.getresponse()
        assert (answer.status, json.loads(answer.read())) == (200, "slow")
    finally:
        slow.close()

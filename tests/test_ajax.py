"""``/ajax/<function>`` over raw HTTP against a real ``twistd -n hpxd``:
the demo app (whose functions docs/http.md's curl examples call) and
tests/http_app.py. The browser's side (jQuery as Heapkeeper's client
posts): tests/test_ajax_browser.py."""

import http.client
import json
import select

import pytest

from tests.support import Daemon
from tests.web_http import (JSON_TYPE, FORM, form, log_in, post_form, request, web_config)

MULTIPART_BODY = (b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\x00[1]\r\n"
                  b"--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n\x00[2, 3]\r\n"
                  b"--XyZ--\r\n")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    daemon = Daemon(tmp_path_factory.mktemp("ajax"), web_config("hpxd.demo"), name="ajax")
    try:
        yield daemon.start().web_port
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    daemon = Daemon(tmp_path_factory.mktemp("ajax-app"), web_config("tests.http_app"),
                    name="ajax-app")
    try:
        yield daemon.start().web_port
    finally:
        daemon.stop()


def assert_error(reply, status, code):
    assert reply.status == status, reply
    assert reply.headers["content-type"] == JSON_TYPE
    body = reply.json()
    assert body["code"] == code and isinstance(body["error"], str), body
    assert "Traceback" not in reply.text


# -- parameters ---------------------------------------------------------------------

def test_values_after_a_zero_byte_are_json(demo):
    reply = post_form(demo, "/ajax/add", "a=%001&b=%002")
    assert (reply.status, reply.json()) == (200, 3)
    assert post_form(demo, "/ajax/add", form(a=[1, {"x": None}], b=["é"])).json() == \
        [1, {"x": None}, "é"]


def test_other_values_stay_strings(demo):
    assert post_form(demo, "/ajax/add", "a=12&b=3").json() == "123"
    assert post_form(demo, "/ajax/echo", "value=%22quoted%22").json() == '"quoted"'
    assert post_form(demo, "/ajax/echo", "value=").json() == ""


def test_the_answer_is_the_functions_value_itself(demo):
    for value in (None, 0, "text", [1, 2], {"a": {"b": [True]}}):
        reply = post_form(demo, "/ajax/echo", form(value=value))
        assert (reply.status, reply.json()) == (200, value)


def test_bad_json_after_a_zero_byte_is_400_code_900(demo):
    for bad in ("%00{", "%00", "%00undefined", "%00" + "[" * 100000):
        assert_error(post_form(demo, "/ajax/echo", "value=" + bad), 400, 900)


def test_a_parameter_given_twice_is_refused(demo):
    assert_error(post_form(demo, "/ajax/add", "a=%001&a=%002&b=%003"), 400, 413)
    assert_error(post_form(demo, "/ajax/add?a=%001", "a=%002&b=%003"), 400, 413)


def test_query_string_and_body_together(demo):
    assert post_form(demo, "/ajax/add?a=%001", "b=%002").json() == 3
    reply = request(demo, "POST", "/ajax/add?a=%00[1]",
                    MULTIPART_BODY.replace(b'name="a"', b'name="c"'),
                    {"content-type": "multipart/form-data; boundary=XyZ"})
    assert_error(reply, 400, 413)  # c is no parameter of add


def test_a_multipart_body(demo):
    reply = request(demo, "POST", "/ajax/add", MULTIPART_BODY,
                    {"content-type": "multipart/form-data; boundary=XyZ"})
    assert (reply.status, reply.json()) == (200, [1, 2, 3])


@pytest.mark.parametrize("body, boundary", [
    (b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1", "XyZ"),  # cut off
    (b"no parts at all", "XyZ"),
    (MULTIPART_BODY, ""),  # no boundary
    (b"--XyZ\r\nContent-Disposition: form-data\r\n\r\n1\r\n--XyZ--\r\n", "XyZ"),  # no name
])
def test_a_malformed_multipart_body_is_a_json_400_and_the_node_lives(demo, body, boundary):
    kind = "multipart/form-data" + (f"; boundary={boundary}" if boundary else "")
    reply = request(demo, "POST", "/ajax/add", body, {"content-type": kind})
    assert reply.status == 400 and reply.headers["content-type"] == JSON_TYPE, reply
    assert reply.json()["code"] in (410, 413)
    assert post_form(demo, "/ajax/add", form(a=1, b=2)).json() == 3


def test_a_body_that_is_not_a_form_is_refused(demo):
    reply = request(demo, "POST", "/ajax/add", json.dumps({"a": 1, "b": 2}),
                    {"content-type": "application/json"})
    assert_error(reply, 400, 410)


def test_text_that_is_not_utf8_is_refused(demo):
    assert_error(post_form(demo, "/ajax/echo", "value=%ff"), 400, 410)


def test_missing_or_unknown_arguments_are_413(demo):
    assert_error(post_form(demo, "/ajax/add", form(a=1)), 400, 413)
    assert_error(post_form(demo, "/ajax/add", form(a=1, b=2, c=3)), 400, 413)


def test_argument_types_as_the_function_gets_them(app):
    reply = post_form(app, "/ajax/kinds", "s=1&n=%001&f=%001.5&l=%00[]&d=%00{}&z=%00null&t=%00true")
    assert reply.json() == {"s": "str", "n": "int", "f": "float", "l": "list", "d": "dict",
                            "z": "NoneType", "t": "bool"}


# -- methods ----------------------------------------------------------------------

def test_get_is_refused_where_not_declared(demo):
    reply = request(demo, "GET", "/ajax/add?a=%001&b=%002")
    assert_error(reply, 405, 418)
    assert reply.headers["allow"] == "POST"


def test_get_is_allowed_where_declared(demo):
    reply = request(demo, "GET", "/ajax/echo?value=%00[1,2]")
    assert (reply.status, reply.json()) == (200, [1, 2])
    assert request(demo, "GET", "/ajax/echo?value=plain").json() == "plain"
    head = request(demo, "HEAD", "/ajax/echo?value=%001")
    assert head.status == 200 and head.raw == b""
    assert post_form(demo, "/ajax/echo", "value=%001").json() == 1  # POST too


def test_other_methods_are_405(demo):
    reply = request(demo, "PUT", "/ajax/echo", "value=1", FORM)
    assert_error(reply, 405, 418)
    assert reply.headers["allow"] == "GET, HEAD, POST"
    assert_error(request(demo, "DELETE", "/ajax/add"), 405, 418)


# -- refusals ---------------------------------------------------------------------

def test_a_foreign_origin_is_refused(demo):
    refused = post_form(demo, "/ajax/count", "", {"origin": "http://evil.example"})
    assert_error(refused, 403, 406)
    assert refused.cookie is None  # nothing ran
    refused = request(demo, "GET", "/ajax/echo?value=1", headers={"origin": "null"})
    assert_error(refused, 403, 406)
    own = post_form(demo, "/ajax/echo", "value=1", {"origin": f"http://127.0.0.1:{demo}"})
    assert (own.status, own.json()) == (200, "1")


def test_an_unknown_function_is_404(demo):
    assert_error(post_form(demo, "/ajax/nothing", ""), 404, 404)
    assert_error(post_form(demo, "/ajax/catalog.nothing", ""), 404, 404)
    assert_error(post_form(demo, "/ajax/", ""), 404, 404)
    assert_error(post_form(demo, "/ajax/add/more", ""), 404, 404)
    assert_error(request(demo, "GET", "/ajax/nothing"), 404, 404)


def test_a_missing_privilege_is_403(demo):
    assert_error(post_form(demo, "/ajax/remember", form(key="k", value=1)), 403, 406)


def test_an_application_error_is_400(demo):
    assert_error(post_form(demo, "/ajax/catalog.test", form(a=1, b=2)), 400, 400)


def test_a_bug_is_500_code_100_without_internals(demo, app):
    reply = post_form(demo, "/ajax/fail", "")
    assert_error(reply, 500, 100)
    assert "fails" not in reply.text
    assert_error(post_form(app, "/ajax/odd", ""), 500, 100)  # a value that is no JSON


# -- sessions ---------------------------------------------------------------------

def test_a_guest_given_data_gets_a_cookie_that_keeps_the_session(demo):
    first = post_form(demo, "/ajax/count", "")
    assert first.json() == 1 and first.cookie
    second = post_form(demo, "/ajax/count", "", {"cookie": f"hpxd_session={first.cookie}"})
    assert second.json() == 2 and second.cookie is None  # named already
    assert post_form(demo, "/ajax/count", "").json() == 1  # no cookie: a new guest
    stateless = post_form(demo, "/ajax/echo", "value=1")
    assert stateless.cookie is None  # a transient guest leaves nothing


def test_a_logged_in_cookie_calls_as_that_user(demo):
    cookie = log_in(demo)
    reply = request(demo, "GET", "/ajax/whoami", headers={"cookie": f"hpxd_session={cookie}"})
    assert reply.json() == {"user_name": "alice", "role": "user"}
    assert post_form(demo, "/ajax/catalog.test", form(a=1, b=2),
                     {"cookie": f"hpxd_session={cookie}"}).json() == 3


def test_a_cookie_of_an_ended_session_is_cleared(demo):
    reply = post_form(demo, "/ajax/echo", "value=1", {"cookie": "hpxd_session=gone"})
    assert reply.json() == "1"
    assert reply.cookie == ""


def test_the_environ_names_the_door_and_hides_the_cookie(app):
    reply = request(app, "GET", "/ajax/environ",
                    headers={"cookie": "hpxd_session=x", "x-trace": "abc"})
    environ = reply.json()
    assert environ["door"] == "ajax" and environ["peer"].startswith("127.0.0.1:")
    assert environ["headers"]["x-trace"] == "abc" and "cookie" not in environ["headers"]


# -- every reply --------------------------------------------------------------------

def test_json_content_type_and_gzip_when_accepted(demo):
    for path, body, status in (("/ajax/echo", form(value="x" * 2000), 200),
                               ("/ajax/nothing", "", 404)):
        plain = post_form(demo, path, body)
        assert plain.status == status and plain.headers["content-type"] == JSON_TYPE
        assert plain.headers.get("content-encoding") is None
        zipped = post_form(demo, path, body, {"accept-encoding": "gzip"})
        assert zipped.status == status and zipped.headers["content-type"] == JSON_TYPE
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.json() == plain.json() and len(zipped.raw) < len(plain.raw) + 30


def test_a_long_call_does_not_hold_up_others(app):
    slow = http.client.HTTPConnection("127.0.0.1", app, timeout=10)
    try:
        slow.request("POST", "/ajax/slow", "seconds=%002", FORM)
        fast = post_form(app, "/ajax/kinds", "a=1")
        assert fast.json() == {"a": "str"}
        # The slow call is still running: nothing has come back for it yet.
        assert select.select([slow.sock], [], [], 0)[0] == []
        answer = slow.getresponse()
        assert (answer.status, json.loads(answer.read())) == (200, 2)
    finally:
        slow.close()


def test_percent_encoded_names(demo):
    assert request(demo, "GET", "/ajax/ech%6f?%76alue=%00%22v%22").json() == "v"  # o, v


def test_an_answer_that_comes_later_has_a_content_length(app):
    # Not chunked: one write of the body, as twisted.web gives an answer returned at once.
    reply = post_form(app, "/ajax/slow", "seconds=%000")
    assert reply.json() == 0
    assert reply.headers["content-length"] == str(len(reply.raw))
    assert reply.headers.get("transfer-encoding") is None


def test_a_guest_given_data_after_a_wait_gets_its_cookie(app):
    reply = post_form(app, "/ajax/remember_later", "value=%00[7]")
    assert reply.json() == [7] and reply.cookie
    again = post_form(app, "/ajax/recall", "", {"cookie": f"hpxd_session={reply.cookie}"})
    assert again.json() == [7]


def test_on_redis_a_cookie_made_on_one_node_calls_on_another(daemons, redis_server):
    backend = f'[backend]\nkind = "redis"\nredis_url = "{redis_server.url}"\n'
    a = daemons(web_config("tests.http_app", extra=backend), name="a").web_port
    b = daemons(web_config("tests.http_app", extra=backend), name="b").web_port
    first = post_form(a, "/ajax/remember_later", "value=%00{\"n\": 1}")
    assert first.json() == {"n": 1} and first.cookie
    cookie = {"cookie": f"hpxd_session={first.cookie}"}
    assert post_form(b, "/ajax/recall", "", cookie).json() == {"n": 1}
    ended = post_form(b, "/ajax/recall", "", {"cookie": "hpxd_session=gone"})
    assert (ended.json(), ended.cookie) == (None, "")  # a guest now; the cookie cleared

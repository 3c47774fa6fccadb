"""The web helpers /ajax and /ext lean on, alone: the Origin check's memory,
``environ["headers"]``, a reply that is no JSON, ``session_now``."""

import json

from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from hpxd.backends.memory import MemoryHub, MemoryScope, MemorySessionStore
from hpxd.core.app import Task
from hpxd.core.auth import Authenticator, Role
from hpxd.core.node import Node
from hpxd.doors.web import json_answer, request_environ
from hpxd.doors.web import origin as origin_module
from hpxd.doors.web.cookies import session_now
from hpxd.doors.web.origin import OriginCheck


def test_the_origin_check_remembers_answers_but_only_so_many(monkeypatch):
    monkeypatch.setattr(origin_module, "SEEN_MAX", 3)
    check = OriginCheck(["http://ok.example:*"])
    for _ in range(2):  # asked again: the same answers
        assert check.allows("http://ok.example:8080")
        assert not check.allows("http://evil.example")
        assert not check.allows("null")
    for n in range(10):  # past the bound: still right, no longer remembered
        assert check.allows(f"http://ok.example:{n + 1}")
        assert not check.allows(f"http://evil{n}.example")
    assert len(check._seen) == 3


def request_with(headers, path=b"/ajax/x"):
    request = DummyRequest(path.split(b"/")[1:])
    request.path = request.uri = path
    for name, value in headers:
        request.requestHeaders.addRawHeader(name, value)
    return request


def test_environ_headers_are_read_only_lower_case_and_keep_secrets_out():
    request = request_with([(b"X-Trace", b"a"), (b"x-trace", b"b"), (b"Cookie", b"s=1"),
                            (b"Authorization", b"Bearer t"), (b"User-Agent", b"ua")])
    environ = request_environ(request, "ajax", extra=1)
    assert environ["door"] == "ajax" and environ["extra"] == 1
    headers = environ["headers"]
    assert dict(headers) == {"x-trace": "a, b", "user-agent": "ua"}
    assert "cookie" not in headers and len(headers) == 2
    try:
        headers["x"] = "y"
    except TypeError:
        pass
    else:
        raise AssertionError("environ['headers'] took a new key")


def test_a_value_that_is_no_json_answers_500_code_100():
    request = request_with([])
    body = json_answer(request, {"set": {1, 2}})
    assert request.responseCode == 500
    assert json.loads(body) == {"error": json.loads(body)["error"], "code": 100}
    nested = []
    for _ in range(100000):
        nested = [nested]
    assert json.loads(json_answer(request_with([]), nested))["code"] == 100
    ok = request_with([])
    assert json.loads(json_answer(ok, {"a": [1]})) == {"a": [1]} and ok.responseCode == 200


def test_session_now_reads_the_cookie_or_makes_a_transient_guest():
    clock = Clock()
    auth = Authenticator({"guest": Role("guest", privileges={"*": frozenset({"view"})})}, {},
                         True, "guest", 1.0, clock)
    node = Node("unit", Task("app"), auth, MemorySessionStore(60, clock=clock), MemoryScope(),
                MemoryHub(), records=None)
    stored = node.sessions.create({"user_name": "u", "role": "guest"}).result
    found = session_now(request_with([(b"Cookie", f"hpxd_session={stored.id}".encode())]), node)
    assert found.id == stored.id and found.user_name == "u"
    for headers in ([], [(b"Cookie", b"hpxd_session=ended")]):
        guest = session_now(request_with(headers), node)
        assert guest.transient and guest.role == "guest"

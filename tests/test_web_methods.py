"""Every web resource that takes GET and HEAD answers any other method with
HTTP 405, an ``Allow`` header and the JSON error of the one table (code 418,
naming the method), on the web listener and on the ``[metrics]`` listener;
a path nobody serves stays the JSON 404 whatever the method. In process on
real sockets. (``/ws`` is the WebSocket door's: not here.)"""

import json

import pytest
import pytest_twisted
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from hpxd.app import Task
from tests.support import start_service

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using readBody with a transport that does not have an abortConnection method")

WEB_PATHS = ["/", "/console/console.js", "/console/console.css", "/static/hello.txt",
             "/healthz", "/readyz", "/metrics"]
METRICS_PATHS = ["/metrics", "/healthz", "/readyz"]
METHODS = [b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"]


class Listeners:
    def __init__(self, service):
        self.service = service
        ports = {door.name: door.addresses()[0].port for door in service.doors}
        self.web, self.metrics = ports["web"], ports["metrics"]


@pytest_twisted.async_yield_fixture
async def listeners(tmp_path):
    root = tmp_path
    (root / "static").mkdir()
    (root / "static" / "hello.txt").write_text("hello\n")
    raw = {"server": {"data_dir": str(root / "data"), "shutdown_timeout": 2},
           "tcp": {"listen": []},
           "web": {"listen": ["tcp:0:interface=127.0.0.1"], "static_dir": str(root / "static")},
           "metrics": {"listen": ["tcp:0:interface=127.0.0.1"]},
           "backend": {"kind": "memory"}}
    service = await start_service(raw, Task("methods"))
    yield Listeners(service)
    await service.stopService()


async def ask(port, path, method):
    """``method`` on ``path``, without a body: (response, JSON body or None)."""
    from twisted.internet import reactor
    response = await Agent(reactor).request(
        method, f"http://127.0.0.1:{port}{path}".encode(), Headers({}))
    body = await readBody(response)
    return response, body


def assert_405(response, body, path, method):
    assert response.code == 405, (path, method, body)
    assert response.headers.getRawHeaders(b"allow") == [b"GET, HEAD"]
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json; charset=utf-8"]
    assert json.loads(body) == {"code": 418, "error": f"{path} takes GET or HEAD, not "
                                                      f"{method.decode()}"}


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path", WEB_PATHS)
async def test_a_wrong_method_on_the_web_listener_is_a_json_405(listeners, path):
    for method in METHODS:
        response, body = await ask(listeners.web, path, method)
        assert_405(response, body, path, method)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path", METRICS_PATHS)
async def test_a_wrong_method_on_the_metrics_listener_is_a_json_405(listeners, path):
    for method in METHODS:
        response, body = await ask(listeners.metrics, path, method)
        assert_405(response, body, path, method)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path", WEB_PATHS)
async def test_get_and_head_are_still_served(listeners, path):
    for method in (b"GET", b"HEAD"):
        response, body = await ask(listeners.web, path, method)
        assert response.code == 200, (path, method, body)
        assert (body == b"") == (method == b"HEAD")


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("port_name, path", [
    ("web", "/nope"), ("web", "//"), ("web", "/console/nope.js"), ("web", "/static/nope.txt"),
    ("web", "/static/"), ("metrics", "/"), ("metrics", "/static/hello.txt")])
async def test_a_path_nobody_serves_is_a_404_whatever_the_method(listeners, port_name, path):
    for method in (b"GET", b"POST", b"DELETE"):
        response, body = await ask(getattr(listeners, port_name), path, method)
        assert response.code == 404, (path, method)
        assert json.loads(body)["code"] == 404

"""The console page at ``/``, its files under ``/console/`` and the static
files of ``[web] static_dir`` under ``/static/``, in process on real sockets.

Every request here goes out as raw bytes over a plain TCP connection: an
HTTP client library (or a URL parser) would normalise ``..`` and percent
escapes away before they reach the server, and then the escape attempts
would test nothing.
"""

import json
import os
import threading

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from hpxd.app import Task
from tests.support import RawHttp, start_service

# twisted.web.static builds its own (deprecated) HTML error pages when it is
# imported; hpxd replaces them with the JSON ones (hpxd.doors.web.console).
pytestmark = pytest.mark.filterwarnings(
    "ignore:twisted.web.resource._Unsafe.*:DeprecationWarning")

SECRET = "TOP-SECRET-f3a9c1d2-do-not-serve"


class Response:
    def __init__(self, raw):
        head, _, self.body = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def json(self):
        return json.loads(self.body)


async def send(port, target, method=b"GET", host=None):
    """``target`` goes on the request line byte for byte."""
    from twisted.internet import reactor
    host = b"127.0.0.1:%d" % port if host is None else host
    request = (method + b" " + target + b" HTTP/1.1\r\nHost: " + host
               + b"\r\nConnection: close\r\n\r\n")
    client = RawHttp(request)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5), client)
    return Response(await client.done)


@pytest.fixture
def site(tmp_path):
    """A static root with files, a secret file OUTSIDE it and symlinks out."""
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello static\n")
    (root / "app.js").write_text("console.log('app');\n")
    (root / "style.css").write_text("body { color: black; }\n")
    (root / "data.json").write_text('{"a": 1}\n')
    (root / "blob.xyz123").write_bytes(b"\x00\x01binary")
    (root / "sub" / "page.html").write_text("<p>page</p>\n")
    (root / "sub" / "index.html").write_text("<p>an index file is no listing</p>\n")
    (root / "inside-link.txt").symlink_to(root / "hello.txt")  # stays inside: fine
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    (root / "leak.txt").symlink_to(secret)              # a file symlink out
    (root / "outdir").symlink_to(tmp_path)             # a directory symlink out
    (root / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    return root, secret


async def start(tmp_path, static_dir=""):
    raw = {"server": {"data_dir": str(tmp_path / "data"), "shutdown_timeout": 2},
           "tcp": {"listen": []},
           "web": {"listen": ["tcp:0:interface=127.0.0.1"], "static_dir": static_dir},
           "backend": {"kind": "memory"}}
    service = await start_service(raw, Task("console_test"))
    [door] = service.doors
    return service, door.addresses()[0].port


@pytest_twisted.async_yield_fixture
async def web(tmp_path, site):
    root, _ = site
    service, port = await start(tmp_path, str(root))
    yield port
    await service.stopService()


# -- escaping the static root -------------------------------------------------

# "{secret}" stands for the secret file's absolute path, "{secret%}" for it
# with every "/" percent-encoded.
ESCAPES = [
    b"/static/../secret.txt",
    b"/static/sub/../../secret.txt",
    b"/static/%2e%2e/secret.txt",
    b"/static/%2E%2E/secret.txt",
    b"/static/.%2e/secret.txt",
    b"/static/%2e%2e%2fsecret.txt",
    b"/static/..%2fsecret.txt",
    b"/static/sub/%2e%2e/%2e%2e/secret.txt",
    b"/static/%252e%252e/secret.txt",            # double-encoded ..
    b"/static/%252e%252e%252fsecret.txt",        # double-encoded ../
    b"/static/..\\secret.txt",                   # a raw backslash
    b"/static/..%5csecret.txt",                  # an encoded backslash
    b"/static/sub\\..\\..\\secret.txt",
    b"/static/{secret}",                         # //tmp/...: an absolute path
    b"/static/{secret%}",                        # %2ftmp%2f...
    b"/static/%2e%2e%00/secret.txt",             # NUL
    b"/static/leak.txt",                         # a file symlink out of the root
    b"/static/outdir/secret.txt",                # a directory symlink out
    b"/static/sub/up/secret.txt",
    b"/static/sub/up/site/../secret.txt",
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("template", ESCAPES, ids=lambda t: t.decode())
async def test_no_escape_attempt_reaches_a_file_outside_the_static_root(web, site, template):
    _, secret = site
    absolute = str(secret).encode()
    target = (template.replace(b"{secret}", absolute)
              .replace(b"{secret%}", absolute.replace(b"/", b"%2f")))
    response = await send(web, target)
    assert SECRET.encode() not in response.body
    assert response.status == 404, response.body
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json()["code"] == 404


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("target", [b"/static/.env", b"/static/sub/.git/config"])
async def test_hidden_files_are_not_served(web, site, target):
    root, _ = site
    (root / ".env").write_text("PASSWORD=hunter2\n")
    (root / "sub" / ".git").mkdir()
    (root / "sub" / ".git" / "config").write_text("[core] hunter2\n")
    response = await send(web, target)
    assert response.status == 404 and b"hunter2" not in response.body


@pytest_twisted.ensureDeferred
async def test_a_nul_byte_does_not_cut_the_path_short(web):
    """``hello.txt%00.png`` is not ``hello.txt``."""
    for target in (b"/static/hello.txt%00", b"/static/hello.txt%00.png"):
        response = await send(web, target)
        assert response.status == 404, target
        assert b"hello static" not in response.body


@pytest_twisted.ensureDeferred
async def test_a_symlink_that_stays_inside_the_root_is_served(web):
    response = await send(web, b"/static/inside-link.txt")
    assert (response.status, response.body) == (200, b"hello static\n")


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("target", [b"/static", b"/static/", b"/static/sub", b"/static/sub/",
                                    b"/static/.", b"/static/sub/.", b"/static/outdir",
                                    b"/static/outdir/"])
async def test_directories_are_never_listed(web, target):
    response = await send(web, target)
    assert response.status == 404, response.body
    assert response.json()["code"] == 404
    for name in (b"hello.txt", b"page.html", b"index", b"secret"):
        assert name not in response.body


# -- serving -------------------------------------------------------------------

@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("name, content_type", [
    ("hello.txt", "text/plain; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("data.json", "application/json"),
    ("sub/page.html", "text/html; charset=utf-8"),
    ("blob.xyz123", "application/octet-stream"),
])
async def test_a_static_file_is_served_with_its_content_type(web, site, name, content_type):
    root, _ = site
    response = await send(web, b"/static/" + name.encode())
    assert response.status == 200
    assert response.body == (root / name).read_bytes()
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache"
    assert "last-modified" in response.headers


@pytest_twisted.ensureDeferred
async def test_head_gives_the_headers_without_the_body(web):
    response = await send(web, b"/static/hello.txt", method=b"HEAD")
    assert response.status == 200
    assert response.headers["content-length"] == str(len("hello static\n"))
    assert response.body == b""


@pytest_twisted.ensureDeferred
async def test_a_large_file_arrives_whole(web, site):
    """Served through twisted.web's producer (64 KiB reads as the socket
    takes them), not read into memory in one blocking call."""
    root, _ = site
    big = os.urandom(8 * 1024 * 1024)
    (root / "big.bin").write_bytes(big)
    response = await send(web, b"/static/big.bin")
    assert response.status == 200
    assert response.headers["content-length"] == str(len(big))
    assert response.body == big


@pytest_twisted.ensureDeferred
async def test_a_missing_file_is_a_json_404(web):
    response = await send(web, b"/static/nope.txt")
    assert response.status == 404
    assert response.json() == {"error": "no such path '/static/nope.txt'", "code": 404}


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE"])
async def test_static_files_are_read_only(web, site, method):
    root, _ = site
    response = await send(web, b"/static/hello.txt", method=method)
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json()["code"] == 418 and method.decode() in response.json()["error"]
    assert (root / "hello.txt").read_text() == "hello static\n"


@pytest_twisted.ensureDeferred
async def test_without_a_static_dir_static_is_a_json_404(tmp_path, site):
    service, port = await start(tmp_path, static_dir="")
    try:
        for target in (b"/static/hello.txt", b"/static/", b"/static"):
            response = await send(port, target)
            assert response.status == 404, target
            assert response.json()["code"] == 404
    finally:
        await service.stopService()


# -- the lookup runs off the reactor ----------------------------------------------

def sleep(seconds):
    from twisted.internet import reactor
    return task.deferLater(reactor, seconds, lambda: None)


async def until(condition, what, seconds=10):
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await sleep(0.01)
    raise AssertionError(f"not seen in {seconds} s: {what}")


@pytest.fixture
def slow_resolve(monkeypatch):
    """``console.resolve`` held until ``release`` is set; it fails at once
    on the reactor thread (where waiting would stop the test itself)."""
    from hpxd.doors.web import console
    real, reactor_thread = console.resolve, threading.current_thread()

    class Slow:
        started, release, threads = threading.Event(), threading.Event(), []

        @staticmethod
        def resolve(root, segments):
            Slow.threads.append(threading.current_thread())
            if threading.current_thread() is reactor_thread:
                raise AssertionError("static path resolved on the reactor thread")
            Slow.started.set()
            assert Slow.release.wait(10), "never released"
            return real(root, segments)

    monkeypatch.setattr(console, "resolve", Slow.resolve)
    yield Slow
    Slow.release.set()


@pytest_twisted.ensureDeferred
async def test_static_paths_are_resolved_off_the_reactor_thread(web, slow_resolve):
    slow_resolve.release.set()
    response = await send(web, b"/static/hello.txt")
    assert (response.status, response.body) == (200, b"hello static\n")
    assert slow_resolve.threads and threading.current_thread() not in slow_resolve.threads


@pytest_twisted.ensureDeferred
async def test_a_slow_static_lookup_does_not_hold_up_other_requests(web, slow_resolve):
    slow = defer.ensureDeferred(send(web, b"/static/hello.txt"))
    await until(lambda: slow_resolve.started.is_set() or slow.called, "the lookup starts")
    assert not slow.called, slow.result.status
    page = await send(web, b"/")  # answered while the lookup waits
    assert page.status == 200
    assert not slow.called
    slow_resolve.release.set()
    response = await slow
    assert (response.status, response.body) == (200, b"hello static\n")


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("target", [b"/static/hello.txt", b"/static/nope.txt"])
async def test_a_client_that_hangs_up_during_the_lookup_is_not_answered(web, slow_resolve,
                                                                        monkeypatch, target):
    """Nothing is written to the request it left (twisted.web would raise)."""
    from hpxd.doors.web import console
    outcomes = []
    real_serve = console.StaticFiles._serve

    def serve(self, *args):
        try:
            real_serve(self, *args)
        except BaseException as e:
            outcomes.append(e)
            raise
        outcomes.append("returned")

    monkeypatch.setattr(console.StaticFiles, "_serve", serve)
    client = RawHttp(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    from twisted.internet import reactor
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", web, timeout=5), client)
    await until(slow_resolve.started.is_set, "the lookup starts")
    client.transport.loseConnection()
    assert await client.done == b""
    slow_resolve.release.set()
    await until(lambda: outcomes, "the lookup's result handled")
    assert outcomes == ["returned"]
    response = await send(web, target)  # and the listener goes on
    assert response.status in (200, 404)


# -- the console page ----------------------------------------------------------

def csp(response):
    """The Content-Security-Policy as {directive: [sources]}."""
    policy = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, *sources = part.split()
        policy[name] = sources
    return policy


@pytest_twisted.ensureDeferred
async def test_the_console_page_is_served_at_the_root(web):
    response = await send(web, b"/")
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache"
    assert b'<script src="/console/console.js"' in response.body
    assert b'<link rel="stylesheet" href="/console/console.css"' in response.body


@pytest_twisted.ensureDeferred
async def test_the_console_page_has_a_strict_content_security_policy(web):
    policy = csp(await send(web, b"/"))
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'", f"ws://127.0.0.1:{web}", f"wss://127.0.0.1:{web}"]
    assert policy["frame-ancestors"] == ["'none'"]


@pytest_twisted.ensureDeferred
async def test_the_page_is_plain_html_with_no_inline_script_or_style(web):
    body = (await send(web, b"/")).body.decode()
    assert body.count("<script") == 1 and "<style" not in body and " style=" not in body
    assert "http://" not in body and "https://" not in body  # nothing from a CDN


@pytest_twisted.ensureDeferred
async def test_a_hostile_host_header_does_not_reach_the_policy(web):
    for host in (b"evil.example; script-src *", b"a b", b"x'y"):
        policy = csp(await send(web, b"/", host=host))
        assert policy["script-src"] == ["'self'"], host
        assert policy["connect-src"] == ["'self'"], host


@pytest_twisted.ensureDeferred
async def test_head_of_the_console_page(web):
    response = await send(web, b"/", method=b"HEAD")
    assert response.status == 200 and response.body == b""
    assert "content-security-policy" in response.headers


@pytest_twisted.ensureDeferred
async def test_the_console_page_takes_get_only(web):
    response = await send(web, b"/", method=b"POST")
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json()["code"] == 418


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("name, content_type", [
    ("console.js", "text/javascript; charset=utf-8"),
    ("console.css", "text/css; charset=utf-8"),
])
async def test_the_console_files_are_served_from_the_package(web, name, content_type):
    from hpxd.doors.web import console
    response = await send(web, b"/console/" + name.encode())
    assert response.status == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    with open(os.path.join(console.FILES, name), "rb") as f:
        assert response.body == f.read()


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("target", [
    b"/console/", b"/console", b"/console/nope.js", b"/console/index.html",
    b"/console/../console.py", b"/console/%2e%2e/console.py", b"/console/console.js/x",
    b"//", b"/index.html", b"/nope"])
async def test_anything_else_under_the_console_or_the_root_is_a_json_404(web, target):
    response = await send(web, target)
    assert response.status == 404, target
    assert response.json()["code"] == 404

"""Helpers shared by the tests: a raw HPX socket client and a twistd runner."""

import ast
import contextlib
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from twisted.internet import defer, protocol, task

REPO = Path(__file__).resolve().parent.parent
EOF_MARK = b"<EOF>"
REQUIRE_SERVICES = os.environ.get("HPXD_REQUIRE_SERVICES") == "1"


def missing(message):
    """Skip (or, in CI, fail) a test whose outside program or package is missing."""
    if REQUIRE_SERVICES:
        pytest.fail(message + " (HPXD_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def need(program, why):
    """Skip (or, in CI, fail) when an outside program is missing."""
    path = shutil.which(program)
    if path is None:
        missing(f"{program} is not installed: {why}")
    return path


# Debian's chromium, headless, as playwright drives it (its own download of
# a browser does not work here).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def chromium(what):
    """A playwright Browser on Debian's chromium for ``what`` (a test, named
    in the skip message), closed afterwards."""
    executable = need("chromium", f"{what} drives Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing(f"playwright is not installed (pip install playwright): {what}")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


def jam_js_file(name, what):
    """The path of ``name`` (jam.js, jquery.js) in the installed jam.py package."""
    try:
        import jam
    except ImportError:
        missing(f"jam.py is not installed (pip install jam.py==5.4.136): {what}")
    return os.path.join(os.path.dirname(jam.__file__), "js", name)


def frame(obj):
    return gzip.compress(json.dumps(obj).encode()) + EOF_MARK


class RawClient:
    """A blocking HPX client that can also send malformed bytes."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def send_bytes(self, data):
        self.sock.sendall(data)

    def send(self, data, session="", name="test"):
        self.send_bytes(frame({"session": session, "name": name, "data": data}))

    def recv(self):
        while EOF_MARK not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(EOF_MARK, 1)
        return json.loads(gzip.decompress(message))

    def call(self, data, session="", name="test"):
        self.send(data, session, name)
        return self.recv()

    def closed_by_server(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


class Daemon:
    """A real ``twistd -n hpxd`` process on a config written for the test."""

    def __init__(self, tmp_path, config_text="", name="hpxd", twistd_args=()):
        self.twistd_args = list(twistd_args)  # before the "hpxd" subcommand, e.g. -u/-g
        self.dir = Path(tmp_path) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "hpxd.toml"
        self.config.write_text(config_text)
        self.logfile = self.dir / "twistd.log"
        self.proc = None
        self.tcp_port = None

    def start(self, timeout=20):
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self._log = open(self.logfile, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
             *self.twistd_args, "hpxd", "--config", str(self.config)],
            cwd=self.dir, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            match = re.search(r"hpxd tcp door(?: \(\w+\))* starting on (\d+)", text)
            if match and "ready" in text:
                self.tcp_port = int(match.group(1))
                web = re.search(r"hpxd web door(?: \(\w+\))* starting on (\d+)", text)
                self.web_port = int(web.group(1)) if web else None
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"hpxd exited {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"hpxd did not start in {timeout}s:\n{self.log()}")

    def log(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def wait(self, timeout=20):
        return self.proc.wait(timeout)

    def kill(self):
        """SIGKILL: the node dies without a word to anyone (a crash, a lost machine)."""
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()


def tcp_config(extra="", users=()):
    """A config listening on a free port, with the given [[users]] tables."""
    text = '[tcp]\nlisten = ["tcp:0:interface=127.0.0.1"]\n[web]\nlisten = []\n' + extra
    for name, password_hash, role in users:
        text += f'\n[[users]]\nname = "{name}"\npassword_hash = "{password_hash}"\nrole = "{role}"\n'
    return text


def slow_ws_reader(port):
    """A socket that upgrades to /ws and then never reads: its receive
    buffer is made small, so what the server sends piles up in the server."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    return sock


async def flooded_away(hub, big, pushes=2000):
    """Broadcast ``big`` (up to 2,000 times: far more than any kernel buffer
    holds) until the node's one client is dropped; True if it was."""
    from twisted.internet import reactor, task
    [client] = hub.clients()
    for _ in range(pushes):
        if client not in hub.clients():
            return True
        await hub.broadcast("flood", big)
        await task.deferLater(reactor, 0, lambda: None)
    return client not in hub.clients()


async def started_store(url, reactor, task, **settings):
    """A record store (hpxd.core.records.open_store) with its thread pool
    started and ``task``'s tables prepared; closed again if that fails."""
    from hpxd.core.records import open_store
    store = open_store(url, reactor, **settings)
    store.start()
    try:
        await store.prepare(task.items())
    except BaseException:
        store.close()
        raise
    return store


async def started_backend(raw):
    """The backend a config dict ``raw`` names (hpxd.backends.build), its
    services started and ready; stop it with ``stopped_backend``."""
    from twisted.internet import reactor

    from hpxd import backends, config
    backend = backends.build(config.from_dict(raw), reactor)
    for service in backend.services:
        service.startService()
    if backend.ready:
        await backend.ready()
    return backend


async def stopped_backend(backend):
    for service in backend.services:
        await service.stopService()


def imported_modules(path):
    """Every module the source file ``path`` imports, at the top or inside a
    function (``from a import b`` gives both ``a`` and ``a.b``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


class RawHttp(protocol.Protocol):
    """Writes ``request`` (bytes, as given) and collects what comes back
    until the server closes: ``done`` fires with it."""

    def __init__(self, request):
        self.request, self.data, self.done = request, b"", defer.Deferred()

    def connectionMade(self):
        self.transport.write(self.request)

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        if not self.done.called:  # not timed out
            self.done.callback(self.data)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private ``redis-server`` on a free port, keeping nothing on disk;
    with ``password``, it requires it (``--requirepass``) and ``url`` has it."""

    def __init__(self, tmp_path, password=None):
        self.program = need("redis-server", "the Redis backend tests need a real Redis")
        self.dir = Path(tmp_path) / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.proc = None

    @property
    def url(self):
        credentials = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def start(self, timeout=10):
        """Start (or restart, on the same port). The first start moves to
        another free port if something took this one meanwhile."""
        for _ in range(3):
            if self._start(timeout):
                self.started_once = True
                return self
            if getattr(self, "started_once", False):
                break
            self.port = free_port()
        self.stop()
        raise RuntimeError("redis-server did not start")

    def _start(self, timeout):
        extra = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if b"+PONG" in self.command(b"PING"):
                    return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        return False

    def command(self, *words):
        """One command on a connection of its own (authenticated first when
        the server has a password): its reply, as Redis sent it."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s, \
                s.makefile("rb") as replies:
            if self.password:
                s.sendall(self._encode(b"AUTH", self.password.encode()))
                if not replies.readline().startswith(b"+OK"):
                    raise RuntimeError("redis-server refused the test's own password")
            s.sendall(self._encode(*words))
            line = replies.readline()
            if line.startswith(b"$") and int(line[1:]) >= 0:
                return line + replies.read(int(line[1:]) + 2)
            return line

    @staticmethod
    def _encode(*words):
        out = b"*%d\r\n" % len(words)
        for word in words:
            out += b"$%d\r\n%s\r\n" % (len(word), word)
        return out

    def pause(self):
        """SIGSTOP: the kernel still accepts connections for it, and what
        they send waits unread (see ``unread_connections``)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def unread_connections(self):
        """Connections to this server holding bytes it has not read yet
        (from /proc/net/tcp: established, receive queue not empty). For a
        paused server: clients that have sent a command and wait for its
        reply."""
        port = f"{self.port:04X}"
        count = 0
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, queues = fields[1], fields[3], fields[4]
                if local.endswith(":" + port) and state == "01" \
                        and int(queues.split(":")[1], 16) > 0:
                    count += 1
        return count

    def stop(self):
        """SIGKILL (a paused server too): it dies without a word, and the
        kernel resets every connection it had, accepted or not."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@defer.inlineCallbacks
def wait_until(predicate, timeout=10.0):
    """Poll with a real, short deferLater (for work in threads that a fake
    clock cannot drive); each one fires, so none is left behind."""
    from twisted.internet import reactor
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        yield task.deferLater(reactor, 0.002, lambda: None)


async def polled(ask, expected, timeout=10.0):
    """Call ``ask`` (returning a Deferred) again, every 10 ms of real time,
    until it fires with ``expected``: for a TTL that must really pass on
    Redis, where a fake clock cannot help."""
    from twisted.internet import reactor
    deadline = time.monotonic() + timeout
    while await ask() != expected:
        assert time.monotonic() < deadline, f"never got {expected!r} in time"
        await task.deferLater(reactor, 0.01, lambda: None)


def sleep_until_port(port, timeout=10):
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


async def start_service(raw, task):
    """A real HpxdService in this process from a config dict, started on the
    test's reactor; its exit statuses are recorded in ``service.exits``
    instead of stopping the reactor."""
    from twisted.internet import reactor

    from hpxd import config as configmod
    from hpxd.service import HpxdService
    config = configmod.from_dict(raw, "<test>")
    config.resolve_paths()
    exits = []
    service = HpxdService(config, task, reactor, exit=lambda reactor, status: exits.append(status))
    service.exits = exits
    service.privilegedStartService()
    service.startService()
    await service.ready
    assert exits == [], "the service did not start"
    return service

"""Password checks run in a bounded thread pool of their own ([auth]
hash_threads), never in the reactor's shared one (issue 18 A)."""

import threading

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.threads import deferToThread

from hpxd import config as configmod
from hpxd.core import passwords
from hpxd.core.passwords import hash_password
from hpxd.demo import task as demo_task
from hpxd.service import HpxdService
from tests.support import start_service, wait_until

PASSWORD = "pool-test-password"
HASH = hash_password(PASSWORD, log2_n=10)


def raw_config(tmp_path, auth=None):
    return {"server": {"data_dir": str(tmp_path / "data"), "shutdown_timeout": 2},
            "tcp": {"listen": []}, "web": {"listen": []},
            "auth": auth or {},
            "users": [{"name": "alice", "password_hash": HASH, "role": "user"}]}


@pytest_twisted.async_yield_fixture
async def services():
    """Services a test started; each is stopped afterwards, failed test or not."""
    started = []
    yield started
    for service in started:
        if service.running:
            await service.stopService()


@pytest.fixture
def checks(monkeypatch):
    checks = GatedChecks(passwords.verify_password)
    monkeypatch.setattr(passwords, "verify_password", checks)
    yield checks
    checks.gate.set()


class GatedChecks:
    """Stands in for ``verify_password``: each check waits for ``gate`` and
    counts how many run at once."""

    def __init__(self, real):
        self.real = real
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.timed_out = False

    def __call__(self, password, text):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            # The test opens the gate; 30 s: a broken test still ends.
            if not self.gate.wait(30):
                self.timed_out = True
            return self.real(password, text)
        finally:
            with self.lock:
                self.running -= 1


@pytest_twisted.ensureDeferred
async def test_checks_never_run_more_than_hash_threads_at_once_and_leave_the_reactor_pool_free(
        tmp_path, checks, services, reactor):
    service = await start_service(raw_config(tmp_path), demo_task)  # hash_threads = 2
    services.append(service)
    # More logins than the reactor's own pool has threads: before, they
    # filled it and nothing else (Redis host names, reloads) ran meanwhile.
    flood = reactor.getThreadPool().max + 2
    logins = [service.node.login.login("alice", PASSWORD, f"10.0.0.{i}:1") for i in range(flood)]
    try:
        await wait_until(lambda: checks.running == 2)
        # The reactor's pool still serves other work while checks wait.
        other = deferToThread(lambda: "done").addTimeout(10, reactor)
        assert await other == "done"
        assert checks.running == checks.most == 2
    finally:
        checks.gate.set()
    sessions = await defer.gatherResults(logins)
    assert [s.user_name for s in sessions] == ["alice"] * flood
    assert checks.most == 2


@pytest_twisted.ensureDeferred
async def test_hash_threads_sets_the_bound(tmp_path, checks, services):
    service = await start_service(raw_config(tmp_path, {"hash_threads": 3}), demo_task)
    services.append(service)
    logins = [service.node.login.login("alice", PASSWORD, "peer") for _ in range(7)]
    try:
        await wait_until(lambda: checks.running == 3)
    finally:
        checks.gate.set()
    await defer.gatherResults(logins)
    assert checks.most == 3


def threads_named(name):
    return [t for t in threading.enumerate() if name in t.name]


@pytest_twisted.ensureDeferred
async def test_a_reload_keeps_the_pool_and_applies_hash_threads(tmp_path, services, reactor):
    path = tmp_path / "hpxd.toml"
    text = ('[server]\ndata_dir = "{data}"\n[tcp]\nlisten = []\n[web]\nlisten = []\n'
            '[auth]\nhash_threads = {threads}\n'
            '[[users]]\nname = "alice"\npassword_hash = "{hash}"\nrole = "user"\n')
    path.write_text(text.format(data=tmp_path / "data", threads=2, hash=HASH))
    config = configmod.load(str(path))
    config.resolve_paths()
    service = HpxdService(config, demo_task, reactor, config_path=str(path),
                          exit=lambda reactor, status: None)
    services.append(service)
    service.privilegedStartService()
    service.startService()
    await service.ready
    pool = service.hash_pool
    before = service.node.login
    for _ in range(3):
        await service.node.login.login("alice", PASSWORD, "peer")
    path.write_text(text.format(data=tmp_path / "data", threads=5, hash=HASH))
    assert await service.reload() is True
    assert service.node.login is not before  # the new users and roles
    assert service.hash_pool is pool and service.node.login.hash_pool is pool
    assert pool.size == 5
    await service.node.login.login("alice", PASSWORD, "peer")
    await service.stopService()
    assert not pool.running
    # Every thread of the pool is gone once the service stopped.
    assert threads_named("hpxd-passwords") == []


@pytest_twisted.ensureDeferred
async def test_the_pool_stops_off_the_reactor_and_finishes_queued_checks(tmp_path, checks,
                                                                         services, reactor):
    service = await start_service(raw_config(tmp_path), demo_task)
    services.append(service)
    logins = [service.node.login.login("alice", PASSWORD, "peer") for _ in range(4)]
    await wait_until(lambda: checks.running == 2)
    stopped = defer.ensureDeferred(service.hash_pool.stopService())
    # Stopping joins the threads; it must not do so on the reactor, which
    # meanwhile opens the gate.
    reactor.callLater(0, checks.gate.set)
    await stopped
    assert len(await defer.gatherResults(logins)) == 4
    assert not checks.timed_out

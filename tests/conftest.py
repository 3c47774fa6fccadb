import pytest
import pytest_twisted

from tests.support import Daemon


@pytest.fixture
def reactor():
    from twisted.internet import reactor
    return reactor


@pytest.fixture(autouse=True)
def clean_reactor():
    """Fail a test that leaves delayed calls or open sockets in the reactor."""
    from twisted.internet import reactor
    calls = set(reactor.getDelayedCalls())
    selectables = set(reactor.getReaders()) | set(reactor.getWriters())
    yield
    # Let connections closed at the end of the test finish closing.
    pytest_twisted.blockon(_settle(reactor))
    left = [c for c in reactor.getDelayedCalls() if c not in calls and c.active()]
    opened = {s for s in (set(reactor.getReaders()) | set(reactor.getWriters())) - selectables
              if "Waker" not in type(s).__name__}
    for call in left:
        call.cancel()
    assert not left, f"test left delayed calls: {left}"
    assert not opened, f"test left open sockets: {opened}"


def _settle(reactor):
    from twisted.internet import task
    return task.deferLater(reactor, 0.01, lambda: None)


@pytest.fixture
def daemons(tmp_path):
    """Start real twistd processes; every one is stopped after the test."""
    started = []

    def start(config_text="", name="hpxd"):
        daemon = Daemon(tmp_path, config_text, name=f"{name}{len(started)}")
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server of the test's own (skips without one, fails in CI)."""
    from tests.support import RedisServer
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()

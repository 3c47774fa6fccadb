import os
import secrets

import pytest
import pytest_twisted

from tests.support import Daemon


def pytest_configure(config):
    # twisted.web.static, imported for /static/, builds module-level pages
    # with classes Twisted itself deprecated: its warnings, not ours.
    config.addinivalue_line(
        "filterwarnings", r"ignore:twisted\.web\.resource\._Unsafe.*:DeprecationWarning")


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


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    """The ``[backend]`` table of a test that runs on both backends: memory,
    and a private redis-server of its own. (test_seams.py has its own.)"""
    if request.param == "redis":
        return {"kind": "redis", "redis_url": request.getfixturevalue("redis_server").url}
    return {"kind": "memory"}


# -- PostgreSQL for the record tests ---------------------------------------------
# The server is named by one environment variable; CI (.ci/run) makes sure a
# local one runs. Tests never stop or reconfigure it: each makes a database of
# its own and drops it afterwards.
POSTGRES_ENV = "HPXD_TEST_POSTGRES"
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def _postgres_admin():
    """An autocommit connection to the server of $HPXD_TEST_POSTGRES, or a
    skip (a failure with HPXD_REQUIRE_SERVICES=1) when there is none."""
    from tests.support import REQUIRE_SERVICES
    url = os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT)
    try:
        import psycopg
        return url, psycopg.connect(url, autocommit=True, connect_timeout=3)
    except Exception as e:  # not installed, not running, refused: all mean "no server"
        message = f"no PostgreSQL at {POSTGRES_ENV}={url} ({type(e).__name__}: {e})"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (HPXD_REQUIRE_SERVICES=1)")
        pytest.skip(message)


@pytest.fixture
def postgres_url():
    """The URL of a throw-away PostgreSQL database, dropped after the test
    (with any connection still open to it)."""
    from urllib.parse import urlsplit, urlunsplit
    url, admin = _postgres_admin()
    name = f"hpxd_test_{os.getpid()}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(url)._replace(path="/" + name))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each record test runs twice: on a SQLite file and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/db/records.sqlite3"
    return request.getfixturevalue("postgres_url")

"""The database going away or not answering: calls fail with 505 within the
statement timeout, nothing crashes, and the store works again by itself.

The machine's PostgreSQL is shared and never stopped: its connections to
our throw-away database are killed with pg_terminate_backend from a second
session, a lock held by a second session makes it "not answer", and
"down" is a TCP proxy in front of it that stops listening.
"""

import sqlite3
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.protocols import portforward

from hpxd.core import errors
from hpxd.core.app import Task
from tests.support import started_store, wait_until

NAME = "hpxd faults test"  # application_name of the store's connections


def catalog_task():
    task = Task("shop")
    task.item("catalog", fields={"name": "text"})
    return task


@pytest.fixture
def task():
    return catalog_task()


def started(url, reactor, task, **settings):
    return started_store(url, reactor, task, name=NAME, **settings)


@pytest.fixture
def admin(postgres_url):
    """A second session on the test's database, as a sysadmin would open."""
    import psycopg
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        yield connection


def hpxd_backends(admin, waiting_for_a_lock=False):
    query = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
             "AND application_name = %s" + (" AND wait_event_type = 'Lock'"
                                            if waiting_for_a_lock else ""))
    return [pid for (pid,) in admin.execute(query, (NAME,))]


def terminate(admin, pids):
    for pid in pids:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


class HeldLock:
    """A second session holding the catalog table locked, as a long
    migration or a forgotten transaction would."""

    def __init__(self, url):
        import psycopg
        self.connection = psycopg.connect(url)
        self.connection.execute('LOCK TABLE "item_catalog" IN ACCESS EXCLUSIVE MODE')

    def release(self):
        self.connection.rollback()
        self.connection.close()


async def failure_of(d):
    with pytest.raises(errors.DatabaseUnavailable) as info:
        await d
    return info.value


# -- PostgreSQL ------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_killed_idle_connections_are_replaced_without_a_restart(
        postgres_url, admin, reactor, task):
    store = await started(postgres_url, reactor, task, pool_size=2)
    try:
        table = store.table(task.item_by_name("catalog"))
        await defer.gatherResults([table.insert({"name": "pen"}), table.count()])
        killed = hpxd_backends(admin)
        assert killed
        terminate(admin, killed)
        assert await table.count() == 1
        assert await table.insert({"name": "ink"}) == 2
        assert not set(killed) & set(hpxd_backends(admin))
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_a_connection_killed_mid_statement_fails_with_505_then_calls_work(
        postgres_url, admin, reactor, task):
    store = await started(postgres_url, reactor, task, statement_timeout=30)
    lock = None
    try:
        table = store.table(task.item_by_name("catalog"))
        lock = HeldLock(postgres_url)
        pending = table.insert({"name": "pen"})
        await wait_until(lambda: hpxd_backends(admin, waiting_for_a_lock=True))
        started_at = time.monotonic()
        terminate(admin, hpxd_backends(admin))
        error = await failure_of(pending)
        assert time.monotonic() - started_at < 5  # at once, not at the 30 s timeout
        assert error.code == 505 and "try again later" in error.msg
        lock.release()
        lock = None
        await table.insert({"name": "ink"})
        assert [record["name"] for record in await table.open()] == ["ink"]
    finally:
        if lock is not None:
            lock.release()
        await store.close()


@pytest_twisted.ensureDeferred
async def test_a_database_that_does_not_answer_fails_within_the_statement_timeout(
        postgres_url, admin, reactor, task):
    timeout = 1.0
    store = await started(postgres_url, reactor, task, pool_size=2,
                          statement_timeout=timeout)
    lock = HeldLock(postgres_url)
    try:
        table = store.table(task.item_by_name("catalog"))
        started_at = time.monotonic()
        # More calls than threads: the ones waiting for a thread time out too.
        calls = [table.count(), table.insert({"name": "pen"}), table.open(),
                 table.get(1), table.delete(1)]
        for call in calls:
            await failure_of(call)
        assert timeout * 0.9 < time.monotonic() - started_at < timeout + 1.0
        # The server cancelled the statements as well: nothing of ours waits on.
        await wait_until(lambda: not hpxd_backends(admin, waiting_for_a_lock=True),
                         timeout=timeout + 2)
        lock.release()
        lock = None
        assert await table.insert({"name": "ink"}) >= 1
        assert await table.count() == 1
    finally:
        if lock is not None:
            lock.release()
        await store.close()


class SwitchableProxy(portforward.ProxyFactory):
    """A TCP proxy to the database that can be switched off (its port
    closed, its connections dropped) and on again on the same port."""

    def __init__(self, reactor, host, port):
        super().__init__(host, port)
        self.reactor = reactor
        self.connections = []
        self.listening = None  # (self.host and self.port are the database's)
        self.number = 0

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        self.connections.append(protocol)
        return protocol

    def up(self):
        self.listening = self.reactor.listenTCP(self.number, self, interface="127.0.0.1")
        self.number = self.listening.getHost().port

    async def down(self):
        await self.listening.stopListening()
        for protocol in self.connections:
            protocol.transport.abortConnection()
        self.connections = []


def via(url, port):
    parts = urlsplit(url)
    netloc = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest_twisted.ensureDeferred
async def test_an_unreachable_database_fails_at_once_and_is_used_again_when_back(
        postgres_url, reactor, task):
    parts = urlsplit(postgres_url)
    proxy = SwitchableProxy(reactor, parts.hostname, parts.port or 5432)
    proxy.up()
    store = await started(via(postgres_url, proxy.number), reactor, task,
                          statement_timeout=10, connect_timeout=2)
    try:
        table = store.table(task.item_by_name("catalog"))
        assert await table.insert({"name": "pen"}) == 1
        await proxy.down()
        for call in (table.count, lambda: table.insert({"name": "ink"})):
            started_at = time.monotonic()
            await failure_of(call())
            assert time.monotonic() - started_at < 2  # refused: no waiting for a timeout
        proxy.up()  # the same port: the database is back
        assert await table.count() == 1
        assert await table.insert({"name": "ink"}) == 2
    finally:
        await store.close()
        await proxy.down()


# -- SQLite -----------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_a_locked_sqlite_database_fails_within_the_statement_timeout_then_works(
        tmp_path, reactor, task):
    timeout = 1.0
    url = f"sqlite:///{tmp_path}/records.sqlite3"
    store = await started(url, reactor, task, statement_timeout=timeout)
    other = sqlite3.connect(tmp_path / "records.sqlite3", isolation_level=None)
    try:
        table = store.table(task.item_by_name("catalog"))
        other.execute("BEGIN IMMEDIATE")  # another process writing, and writing...
        started_at = time.monotonic()
        await failure_of(table.insert({"name": "pen"}))
        assert timeout * 0.9 < time.monotonic() - started_at < timeout + 1.0
        assert await table.count() == 0  # readers are not blocked by a writer (WAL)
        other.execute("ROLLBACK")
        assert await table.insert({"name": "pen"}) == 1
    finally:
        other.close()
        await store.close()


# -- both ---------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_a_write_whose_caller_was_told_505_is_rolled_back(database_url, reactor, task):
    timeout = 0.5
    # One thread: the count below runs after the late transaction has ended.
    store = await started(database_url, reactor, task, statement_timeout=timeout,
                          pool_size=1)
    try:
        table = store.table(task.item_by_name("catalog"))
        done = []

        def slow_insert(connection):  # in the pool thread, past the caller's deadline
            time.sleep(timeout * 2)
            connection.execute(table.table.insert().values(name="late"))
            done.append(True)

        await failure_of(store.database.write(slow_insert))
        await wait_until(lambda: done)  # the insert ran; its transaction ends next
        assert await table.count() == 0
    finally:
        await store.close()

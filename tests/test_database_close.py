"""Closing the database waits for its threads off the reactor (issue 18 B):
a statement still running at shutdown may take up to statement_timeout."""

import threading

import pytest_twisted
from twisted.internet import defer

from hpxd.core.database import Database
from hpxd.demo import task as demo_task
from tests.support import start_service, wait_until


class HeldStatement:
    """A read that runs until ``release`` is set (30 s at most: a broken
    test still ends)."""

    def __init__(self):
        self.running = threading.Event()
        self.release = threading.Event()
        self.timed_out = False

    def __call__(self, connection):
        self.running.set()
        if not self.release.wait(30):
            self.timed_out = True
        return "answered"


@pytest_twisted.ensureDeferred
async def test_close_does_not_join_the_threads_on_the_reactor(tmp_path, reactor):
    database = Database(f"sqlite:///{tmp_path}/db.sqlite3", reactor, pool_size=2)
    database.start()
    held = HeldStatement()
    answer = database.read(held)
    try:
        await wait_until(held.running.is_set)
        closing = database.close()
        # Only the reactor can let the statement end now: had close() joined
        # the threads right here, it would wait for the statement's 30 s.
        reactor.callLater(0, held.release.set)
        assert isinstance(closing, defer.Deferred)
        await closing
    finally:
        held.release.set()
    assert not held.timed_out
    assert await answer == "answered"
    assert not database.pool.started
    assert not [t for t in database.pool.threads if t.is_alive()]


@pytest_twisted.ensureDeferred
async def test_close_twice_is_harmless(tmp_path, reactor):
    database = Database(f"sqlite:///{tmp_path}/db.sqlite3", reactor)
    database.start()
    await database.ping()
    await defer.gatherResults([database.close(), database.close()])
    await database.close()


@pytest_twisted.ensureDeferred
async def test_the_service_stop_waits_for_the_database_to_close(tmp_path, reactor):
    raw = {"server": {"data_dir": str(tmp_path / "data"), "shutdown_timeout": 2},
           "tcp": {"listen": []}, "web": {"listen": []}}
    service = await start_service(raw, demo_task)
    database = service.node.records.database
    held = HeldStatement()
    answer = database.read(held)
    try:
        await wait_until(held.running.is_set)
        stopping = defer.ensureDeferred(service.stopService())
        reactor.callLater(0, held.release.set)
        await stopping
        # Stopped means closed: no thread of the database is left.
        assert not [t for t in database.pool.threads if t.is_alive()]
    finally:
        held.release.set()
    assert not held.timed_out
    assert await answer == "answered"

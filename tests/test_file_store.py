"""The default file store (hpxd.core.file_store): files in the records
database, in chunks. Each test runs on a SQLite file and on a real
PostgreSQL (``database_url`` in conftest.py)."""

import hashlib
import os

import pytest
import pytest_twisted
from sqlalchemy import func, select
from zope.interface.verify import verifyObject

from hpxd.core import errors
from hpxd.core.database import Database
from hpxd.core.file_store import (BATCH_CHUNKS, MAX_ID_LENGTH, WRITING_LIFETIME,
                                  DatabaseFileStore, owner_of, rechunk)
from hpxd.core.interfaces import IFileStore

CHUNK = 1024  # small chunks: many of them, quickly


class Clock:
    """A settable wall clock for lifetimes."""

    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest_twisted.async_yield_fixture
async def store(database_url, reactor, clock):
    database = Database(database_url, reactor, statement_timeout=10)
    database.start()
    s = DatabaseFileStore(database, chunk_size=CHUNK, clock=clock)
    try:
        await s.prepare()
        yield s
    finally:
        await database.close()


async def whole(store, stored):
    parts = [await store.read(stored.id, index) for index in range(stored.chunks)]
    return b"".join(parts)


def count_rows(store, table):
    return store.database.read(
        lambda connection: connection.execute(select(func.count()).select_from(table)).scalar())


def pieces(data, size):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_the_store_provides_its_interface(database_url, reactor):
    verifyObject(IFileStore, DatabaseFileStore(Database(database_url, reactor)))


def test_rechunk_regroups_whatever_sizes_come_into_chunks():
    data = bytes(range(256)) * 10
    out = list(rechunk(pieces(data, 7), 100))
    assert b"".join(out) == data
    assert [len(c) for c in out] == [100] * 25 + [60]
    with pytest.raises(TypeError):
        list(rechunk(["text"], 100))


@pytest_twisted.ensureDeferred
async def test_a_file_goes_in_and_comes_out_in_chunks_under_a_generated_id(store):
    data = os.urandom(CHUNK * BATCH_CHUNKS * 2 + 123)  # three batches, the last one short
    stored = await store.put("../x.pdf", "application/pdf", "docs", pieces(data, 999))
    assert stored.size == len(data)
    assert stored.chunks == BATCH_CHUNKS * 2 + 1
    assert len(stored.id) == 43 and stored.id != "../x.pdf"  # token_urlsafe(32): 256 bits
    got = await store.get(stored.id)
    assert got == stored
    assert got.name == "../x.pdf" and got.item == "docs" and not got.one_time
    assert await whole(store, got) == data
    assert await store.read(stored.id, stored.chunks) is None


@pytest_twisted.ensureDeferred
async def test_an_empty_file_is_a_file_of_no_chunks(store):
    stored = await store.put("empty.txt", "text/plain", "docs", [])
    assert (await store.get(stored.id)).size == 0 and stored.chunks == 0


@pytest_twisted.ensureDeferred
async def test_a_source_that_fails_midway_leaves_nothing(store):
    def failing():
        yield os.urandom(CHUNK * BATCH_CHUNKS * 3)  # three batches committed first
        raise errors.ParsingError("the body broke off")

    with pytest.raises(errors.ParsingError, match="broke off"):
        await store.put("x.bin", "application/octet-stream", "docs", failing())
    assert await count_rows(store, store.files) == 0
    assert await count_rows(store, store.chunks) == 0


@pytest_twisted.ensureDeferred
async def test_ids_that_are_not_ids_find_nothing(store):
    await store.put("a.txt", "text/plain", "docs", [b"a"])
    for bogus in ["", "x" * (MAX_ID_LENGTH + 1), "' OR 1=1 --", None, 7, ["id"]]:
        assert await store.get(bogus) is None
        assert await store.claim(bogus, "owner") is False
        assert await store.delete(bogus) is False


@pytest_twisted.ensureDeferred
async def test_a_one_time_file_is_claimed_once_by_its_owner_only(store):
    owner = owner_of("session-1")
    stored = await store.put("r.csv", "text/csv", "docs", [b"a,b\n"], owner=owner,
                             lifetime=60)
    assert (await store.get(stored.id)).one_time
    assert await store.claim(stored.id, owner_of("session-2")) is False
    assert await store.claim(stored.id, owner) is True
    assert await store.get(stored.id) is None  # taken: nobody finds it again
    assert await store.claim(stored.id, owner) is False
    assert await store.read(stored.id, 0) == b"a,b\n"  # its taker still reads it
    assert await store.delete(stored.id) is True
    assert await store.read(stored.id, 0) is None


def test_the_owner_is_a_digest_not_the_session_id():
    assert owner_of("abc") == hashlib.sha256(b"abc").hexdigest() != "abc"


@pytest_twisted.ensureDeferred
async def test_expired_files_are_dropped_and_others_kept(store, clock):
    kept = await store.put("keep.txt", "text/plain", "docs", [b"k"])
    report = await store.put("r.txt", "text/plain", "docs", [b"r" * (CHUNK + 1)],
                             owner=owner_of("s"), lifetime=60)
    clock.now += 61
    assert await store.get(report.id) is None  # past its lifetime, before any sweep
    assert await store.claim(report.id, owner_of("s")) is False
    assert await store.drop_expired(clock.now) == 1
    assert await store.get(kept.id) == kept
    assert await count_rows(store, store.chunks) == 1  # kept's one chunk


@pytest_twisted.ensureDeferred
async def test_a_half_written_file_of_a_dead_node_is_dropped_after_its_writing_lifetime(
        store, clock, monkeypatch):
    async def died(file_id):  # the node died before it could clean up
        return None
    monkeypatch.setattr(store, "_forget", died)

    def broken():
        yield b"x" * CHUNK * BATCH_CHUNKS  # one batch committed
        raise errors.ParsingError("gone")

    with pytest.raises(errors.ParsingError):
        await store.put("big.bin", "application/octet-stream", "docs", broken())
    assert await count_rows(store, store.files) == 1  # what a dead node leaves
    clock.now += WRITING_LIFETIME - 1
    assert await store.drop_expired(clock.now) == 0
    clock.now += 2
    assert await store.drop_expired(clock.now) == 1
    assert await count_rows(store, store.chunks) == 0


@pytest_twisted.ensureDeferred
async def test_two_stores_on_one_database_share_files(database_url, reactor, store):
    other_db = Database(database_url, reactor)
    other_db.start()
    try:
        other = DatabaseFileStore(other_db, chunk_size=CHUNK)
        data = os.urandom(5000)
        stored = await store.put("a.bin", "application/octet-stream", "docs", [data])
        got = await other.get(stored.id)
        assert got is not None and await whole(other, got) == data
    finally:
        await other_db.close()

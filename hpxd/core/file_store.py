"""The default file store (``IFileStore``): files in the records database.

Every node of a cluster already shares the records database (one
PostgreSQL; SQLite for a single node), so files kept there need no other
component: a file uploaded through node A downloads through node B.

Two tables, made at start next to the items' tables:

    hpxd_files        one row per file: its id, the client's name (only
                      metadata), content type, size, number of chunks, the
                      item it belongs to, the owner of a one-time file, its
                      state (writing, ready, taken) and when it expires
    hpxd_file_chunks  (file_id, seq) -> data: the bytes, CHUNK_SIZE a row

A file is written a batch of chunks per transaction (``BATCH_CHUNKS``), so
no transaction holds the database long and memory stays bounded whatever
the file's size; it is visible only once its last batch committed
(state ``ready``). It is read a chunk per statement. Ids come from
``secrets`` (256 bits); nothing a client sends names a row, a table or a
path on disk.
"""

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import (BigInteger, Column, Float, Index, Integer, LargeBinary, MetaData,
                        String, Table, Text, delete, insert, select, update)
from twisted.logger import Logger
from zope.interface import implementer

from hpxd.core.deferreds import deferred
from hpxd.core.interfaces import IFileStore

CHUNK_SIZE = 256 * 1024
BATCH_CHUNKS = 8  # chunks written per transaction: 2 MiB
# A file being written expires after this long: a node that dies mid-upload
# leaves rows that the next sweep drops.
WRITING_LIFETIME = 3600
ID_BYTES = 32  # secrets.token_urlsafe(32): 256 bits, 43 characters
MAX_ID_LENGTH = 64
DROP_AT_ONCE = 100  # files dropped per transaction by drop_expired

WRITING, READY, TAKEN = "writing", "ready", "taken"

log = Logger()


def owner_of(session_id):
    """What a one-time file records of the session it is bound to: a digest,
    so the table never holds a live session id."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    id: str
    name: str
    content_type: str
    size: int
    chunks: int
    item: str            # the dotted path of the item it belongs to ("" the task)
    owner: str | None    # one-time files: owner_of(session id)
    created: float
    expires: float | None

    @property
    def one_time(self):
        return self.owner is not None


def tables(metadata):
    files = Table(
        "hpxd_files", metadata,
        Column("id", String(MAX_ID_LENGTH), primary_key=True),
        Column("name", Text, nullable=False),
        Column("content_type", Text, nullable=False),
        Column("size", BigInteger, nullable=False),
        Column("chunks", Integer, nullable=False),
        Column("item", Text, nullable=False),
        Column("owner", String(64)),
        Column("state", String(8), nullable=False),
        Column("created", Float, nullable=False),
        Column("expires", Float),
        Index("hpxd_files_expires", "expires"),
    )
    chunks = Table(
        "hpxd_file_chunks", metadata,
        Column("file_id", String(MAX_ID_LENGTH), primary_key=True),
        Column("seq", Integer, primary_key=True),
        Column("data", LargeBinary, nullable=False),
    )
    return files, chunks


def rechunk(source, size):
    """The bytes of the iterable ``source`` in pieces of ``size`` (the last
    one shorter), whatever sizes ``source`` gives them in."""
    buffer = bytearray()
    for piece in source:
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise TypeError(f"a file's source gave {type(piece).__name__}, not bytes")
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


class _Progress:
    """How far the ``put`` of file ``file_id`` got: chunks and bytes written."""

    def __init__(self, file_id):
        self.file_id = file_id
        self.chunks = 0
        self.size = 0


@implementer(IFileStore)
class DatabaseFileStore:
    """Files in the records database (``hpxd.core.database.Database``)."""

    def __init__(self, database, chunk_size=CHUNK_SIZE, clock=time.time):
        self.database = database
        self.chunk_size = chunk_size
        self.clock = clock
        self.files, self.chunks = tables(MetaData())

    def prepare(self):
        return self.database.prepare([self.files, self.chunks])

    # -- writing ---------------------------------------------------------------------

    @deferred
    async def put(self, name, content_type, item, source, owner=None, lifetime=None):
        now = self.clock()
        row = {"id": secrets.token_urlsafe(ID_BYTES), "name": name,
               "content_type": content_type, "size": 0, "chunks": 0, "item": item,
               "owner": owner, "state": WRITING, "created": now,
               "expires": now + WRITING_LIFETIME}
        expires = None if lifetime is None else now + lifetime
        pieces = rechunk(source, self.chunk_size)
        progress = _Progress(row["id"])
        first = True
        try:
            done = False
            while not done:
                done = await self.database.write(self._write_batch, row if first else None,
                                                 pieces, progress, expires)
                first = False
        except BaseException:
            if not first:  # earlier batches were committed: take them back
                await self._forget(row["id"])
            raise
        finally:
            try:
                pieces.close()
            except ValueError:  # still running in a thread the caller gave up on (timeout)
                pass
        return StoredFile(row["id"], name, content_type, progress.size, progress.chunks, item,
                          owner, now, expires)

    def _write_batch(self, connection, row, pieces, progress, expires):  # in a pool thread
        """One transaction: the file's row (first batch), up to BATCH_CHUNKS
        chunks pulled from ``pieces`` (which reads and parses as it goes),
        and, once ``pieces`` is exhausted, the row made ready. True then."""
        file_id = progress.file_id
        if row is not None:
            connection.execute(insert(self.files).values(row))
        batch, exhausted = [], False
        while len(batch) < BATCH_CHUNKS:
            chunk = next(pieces, None)
            if chunk is None:
                exhausted = True
                break
            batch.append({"file_id": file_id, "seq": progress.chunks + len(batch),
                          "data": chunk})
        if batch:
            connection.execute(insert(self.chunks), batch)
        progress.chunks += len(batch)
        progress.size += sum(len(entry["data"]) for entry in batch)
        if exhausted:
            connection.execute(update(self.files).where(self.files.c.id == file_id).values(
                size=progress.size, chunks=progress.chunks, state=READY, expires=expires))
        return exhausted

    async def _forget(self, file_id):
        try:
            await self.delete(file_id)
        except Exception as e:  # the sweep drops it once its WRITING_LIFETIME ends
            log.warn("could not drop the half-written file {id}: {e}", id=file_id, e=e)

    # -- reading ---------------------------------------------------------------------

    @deferred
    async def get(self, file_id):
        if not _plausible(file_id):
            return None
        return await self.database.read(self._get, file_id, self.clock())

    def _get(self, connection, file_id, now):
        f = self.files.c
        query = select(self.files).where(f.id == file_id, f.state == READY)
        row = connection.execute(query).first()
        if row is None or (row.expires is not None and row.expires <= now):
            return None
        return StoredFile(row.id, row.name, row.content_type, row.size, row.chunks, row.item,
                          row.owner, row.created, row.expires)

    def read(self, file_id, index):
        c = self.chunks.c
        query = select(c.data).where(c.file_id == file_id, c.seq == index)
        return self.database.read(_first_value, query)

    # -- one-time files, deleting ----------------------------------------------------

    @deferred
    async def claim(self, file_id, owner):
        if not _plausible(file_id):
            return False
        f = self.files.c
        query = (update(self.files)
                 .where(f.id == file_id, f.state == READY, f.owner == owner,
                        (f.expires.is_(None)) | (f.expires > self.clock()))
                 .values(state=TAKEN))
        return await self.database.write(_changed_one, query)

    @deferred
    async def delete(self, file_id):
        if not _plausible(file_id):
            return False
        return bool(await self.database.write(self._delete, [file_id]))

    def _delete(self, connection, ids):
        connection.execute(delete(self.chunks).where(self.chunks.c.file_id.in_(ids)))
        return connection.execute(delete(self.files).where(self.files.c.id.in_(ids))).rowcount

    @deferred
    async def drop_expired(self, now=None):
        now = self.clock() if now is None else now
        dropped = 0
        while True:
            count = await self.database.write(self._drop_some, now)
            dropped += count
            if count < DROP_AT_ONCE:
                return dropped

    def _drop_some(self, connection, now):
        f = self.files.c
        query = select(f.id).where(f.expires.is_not(None), f.expires < now).limit(DROP_AT_ONCE)
        ids = list(connection.execute(query).scalars())
        return self._delete(connection, ids) if ids else 0


def _plausible(file_id):
    return type(file_id) is str and 0 < len(file_id) <= MAX_ID_LENGTH


def _first_value(connection, query):
    return connection.execute(query).scalar()


def _changed_one(connection, query):
    return connection.execute(query).rowcount == 1

"""Records of table-backed items: the record API (``item.records``).

Every method checks what it is given against the item's fields first
(hpxd.core.record_query), then runs SQLAlchemy Core statements in the
database's thread pool (hpxd.core.database) and returns a Deferred::

    open(filters=[[field, op, value], ...], order_by=["-price", "name"],
         limit=None, offset=0, fields=None)      -> [ {id, ...}, ... ]
    count(filters=None)                          -> int
    aggregate(filters=None, funcs={field: fn})   -> {field: value}; fn one of
                                                    count, sum, min, max, avg
    get(id)                                      -> {id, ...} or None
    insert(values)                               -> the new id
    update(id, values, expect_hash=None)         -> True, or False: no such id
    delete(id)                                   -> True, or False: no such id
    apply(insert=[...], update=[{"id": n, ...}], delete=[id, ...],
          expect_hash={id: hash})                -> the new ids, in order;
                                                    all in one transaction

docs/records.md is the guide for app writers and sysadmins.
"""

import hashlib
import json
from decimal import Decimal

from sqlalchemy import Column, Integer, MetaData, Table, delete, func, insert, select, update

from hpxd.core import errors
from hpxd.core.database import Database
from hpxd.core.deferreds import deferred
from hpxd.core.record_query import Columns, non_negative
from hpxd.core.record_values import TYPES

ID_TYPE = TYPES["integer"]


def record_hash(record):
    """The hash of a record as ``get``/``open`` give it (every field): what a
    form remembers when it loads a record and sends back as ``expect_hash``
    (the form door's ``recordHashMd5``). MD5 detects change here; it guards
    against no adversary."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5(canonical.encode(), usedforsecurity=False).hexdigest()


def open_store(url, reactor, *, pool_size=4, connect_timeout=5, statement_timeout=10,
               max_rows=1000, name="hpxd"):
    """A RecordStore on ``url`` (sqlite:///PATH or postgresql://...); nothing
    connects before ``start()`` and the first call."""
    database = Database(url, reactor, pool_size, connect_timeout, statement_timeout, name)
    return RecordStore(database, max_rows)


def store_from_config(config, reactor):
    settings = config.database
    return open_store(config.database_url, reactor, pool_size=settings.pool_size,
                      connect_timeout=settings.connect_timeout,
                      statement_timeout=settings.statement_timeout,
                      max_rows=settings.max_rows, name=f"hpxd {config.server.name}")


class RecordStore:
    """The tables of one app in one database. ``start`` before use (the
    service does, at start-up), ``close`` at the end."""

    def __init__(self, database, max_rows=1000):
        self.database = database
        self.max_rows = max_rows
        self.metadata = MetaData()
        self._tables = {}

    @property
    def where(self):
        return self.database.where

    def start(self):
        self.database.start()

    def close(self):
        """A Deferred firing once the database's threads and connections are
        closed (``Database.close``)."""
        return self.database.close()

    def prepare(self, items):
        """Create or extend the table of every table-backed item."""
        return self.database.prepare([self.table(i).table for i in items if i.fields])

    def table(self, item):
        if item.path not in self._tables:
            self._tables[item.path] = RecordTable(self, item)
        return self._tables[item.path]

    def ping(self):
        return self.database.ping()


def _sql_table(metadata, item):
    # BIGSERIAL on PostgreSQL; on SQLite "INTEGER PRIMARY KEY AUTOINCREMENT",
    # the rowid itself, as tables made by earlier versions have it.
    id_type = ID_TYPE.column().with_variant(Integer, "sqlite")
    return Table(item.table_name, metadata, Column("id", id_type, primary_key=True),
                 *[Column(name, TYPES[kind].column()) for name, kind in item.fields.items()],
                 sqlite_autoincrement=True)


class RecordTable:
    """The record API of one table-backed item (``item.records``)."""

    def __init__(self, store, item):
        self.database = store.database
        self.max_rows = store.max_rows
        self.path = item.path
        types = {"id": ID_TYPE, **{name: TYPES[kind] for name, kind in item.fields.items()}}
        self.columns = Columns(item.path, _sql_table(store.metadata, item), types)
        self.table = self.columns.table
        # field -> its give_out, for the fields whose values change on the way out
        self._give_out = {name: t.give_out for name, t in types.items() if t.give_out}

    # -- reading ---------------------------------------------------------------------

    @deferred
    async def open(self, filters=None, order_by=None, limit=None, offset=0, fields=None):
        """Records matching every filter, in ``order_by`` order (then by id),
        at most ``limit`` (capped at ``[database] max_rows``) from ``offset``."""
        query = (select(*self.columns.chosen(fields)).where(*self.columns.where(filters))
                 .order_by(*self.columns.order(order_by))
                 .limit(self._limit(limit)).offset(non_negative(offset, "offset")))
        return await self.database.read(self._records, query)

    @deferred
    async def count(self, filters=None):
        query = select(func.count()).select_from(self.table).where(*self.columns.where(filters))
        return await self.database.read(_scalar, query)

    @deferred
    async def aggregate(self, filters=None, funcs=None):
        """``{field: value}`` of SQL aggregates over the matching records."""
        query = select(*self.columns.aggregates(funcs)).where(*self.columns.where(filters))
        # min and max are field values (a date goes out as text); count, sum, avg numbers
        keep_type = {name for name, fn in funcs.items() if fn in ("min", "max")}
        return await self.database.read(self._one_row, query, keep_type)

    @deferred
    async def get(self, record_id):
        query = select(self.table).where(self.table.c.id == self.columns.record_id(record_id))
        records = await self.database.read(self._records, query)
        return records[0] if records else None

    @deferred
    async def select(self, where=None, limit=100, offset=0):
        """The older form: ``where`` a dict of field equalities, id order."""
        if where is not None and type(where) is not dict:
            raise self.columns.bad("where must be an object of field values")
        filters = [[name, "eq", value] for name, value in (where or {}).items()]
        return await self.open(filters=filters, limit=limit, offset=offset)

    def _limit(self, limit):
        if limit is None:
            return self.max_rows
        return min(non_negative(limit, "limit"), self.max_rows)

    def _records(self, connection, query):  # in a pool thread
        result = connection.execute(query)
        names = list(result.keys())  # once, and rows as tuples: cheaper than a mapping per row
        return [self._give(dict(zip(names, row))) for row in result.all()]

    def _give(self, record):
        for name, give_out in self._give_out.items():
            if name in record:
                record[name] = give_out(record[name])
        return record

    # -- changing --------------------------------------------------------------------

    @deferred
    async def insert(self, values):
        values = self.columns.values(values)
        return await self.database.write(self._insert, values)

    @deferred
    async def update(self, record_id, values, expect_hash=None):
        """True when the record was updated, False when there is none with
        this id. With ``expect_hash`` the record must still be the one that
        hash was taken of (``record_hash``), else StaleRecord and no change."""
        record_id = self.columns.record_id(record_id)
        values = self.columns.values(values)
        if expect_hash is not None and type(expect_hash) is not str:
            raise self.columns.bad("expect_hash must be a string (record_hash of the record)")
        return await self.database.write(self._update, record_id, values, expect_hash)

    @deferred
    async def delete(self, record_id):
        record_id = self.columns.record_id(record_id)
        return await self.database.write(self._delete, record_id)

    @deferred
    async def apply(self, insert=None, update=None, delete=None, expect_hash=None):
        """Inserts, then updates, then deletes, in ONE transaction: if any
        change fails (bad values, an id that is not there, an update whose
        record no longer has its ``expect_hash`` entry's hash) none is
        written. ``expect_hash``: ``{id: record_hash}`` for updates that must
        find the record as it was read (keys may be id strings, as JSON
        objects have them). Returns the new ids in the order of ``insert``."""
        inserts = [self.columns.values(v) for v in self._changes(insert, "insert")]
        updates = [self._update_entry(v) for v in self._changes(update, "update")]
        deletes = [self.columns.record_id(i) for i in self._changes(delete, "delete")]
        hashes = self._expected(expect_hash, {record_id for record_id, _ in updates})
        return await self.database.write(self._apply, inserts, updates, deletes, hashes)

    def _expected(self, expect_hash, updated):
        if expect_hash is None:
            return {}
        if type(expect_hash) is not dict:
            raise self.columns.bad("apply: expect_hash must be an object {id: hash}")
        hashes = {}
        for key, value in expect_hash.items():
            record_id = int(key) if type(key) is str and key.isdigit() else key
            if record_id not in updated or type(value) is not str:
                raise self.columns.bad(f"apply: expect_hash names {key!r}, which is not an "
                                       "update of this apply, or its hash is not a string")
            hashes[record_id] = value
        return hashes

    def _changes(self, changes, what):
        if changes is None:
            return []
        if type(changes) is not list or len(changes) > self.max_rows:
            raise self.columns.bad(f"apply: {what} must be a list of at most "
                                   f"{self.max_rows} entries")
        return changes

    def _update_entry(self, entry):
        values = self.columns.values(entry, allow_id=True)
        if "id" not in values:
            raise self.columns.bad("apply: every update needs the record's id")
        return self.columns.record_id(values.pop("id")), values

    # -- in a pool thread, inside the transaction -----------------------------------

    def _insert(self, connection, values):
        return connection.execute(insert(self.table).values(values)).inserted_primary_key[0]

    def _update(self, connection, record_id, values, expect_hash):
        if expect_hash is not None:
            self._check_unchanged(connection, record_id, expect_hash)
        if not values:
            return self._exists(connection, record_id)
        where = self.table.c.id == record_id
        return connection.execute(update(self.table).where(where).values(values)).rowcount == 1

    def _check_unchanged(self, connection, record_id, expect_hash):
        # FOR UPDATE: nobody changes it between this read and our write
        # (PostgreSQL; SQLite's write transaction holds the database already).
        query = select(self.table).where(self.table.c.id == record_id).with_for_update()
        current = self._records(connection, query)
        if not current:
            raise errors.StaleRecord(f"{self.path}: record {record_id} changed since it was "
                                     "read: it is gone")
        if record_hash(current[0]) != expect_hash:
            raise errors.StaleRecord(f"{self.path}: record {record_id} changed since it was "
                                     "read; load it again")

    def _exists(self, connection, record_id):
        query = select(self.table.c.id).where(self.table.c.id == record_id)
        return connection.execute(query).first() is not None

    def _delete(self, connection, record_id):
        query = delete(self.table).where(self.table.c.id == record_id)
        return connection.execute(query).rowcount == 1

    def _apply(self, connection, inserts, updates, deletes, hashes):
        new_ids = [self._insert(connection, values) for values in inserts]
        for record_id, values in updates:
            if not self._update(connection, record_id, values, hashes.get(record_id)):
                raise errors.StaleRecord(f"{self.path}: apply: no record {record_id} to "
                                         "update; nothing was written")
        for record_id in deletes:
            if not self._delete(connection, record_id):
                raise errors.StaleRecord(f"{self.path}: apply: no record {record_id} to "
                                         "delete; nothing was written")
        return new_ids


    def _one_row(self, connection, query, keep_type):
        row = dict(connection.execute(query).one()._mapping)
        for name, value in row.items():
            give_out = self._give_out.get(name) if name in keep_type else None
            if give_out is not None:
                row[name] = give_out(value)
            elif isinstance(value, Decimal):  # sum and avg on PostgreSQL
                row[name] = int(value) if value % 1 == 0 else float(value)
        return row


def _scalar(connection, query):
    return connection.execute(query).scalar_one()

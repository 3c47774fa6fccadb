"""Records of table-backed items, in SQL through ``twisted.enterprise.adbapi``.

Every query runs in adbapi's thread pool, never on the reactor. Column and
table names come only from the item's declared fields (identifiers checked
when the item is made); values are always bound parameters.
"""

import os
from urllib.parse import urlsplit

from twisted.enterprise import adbapi

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.core.app import FIELD_TYPES


def sqlite_path(url):
    """sqlite:///relative/or/absolute/path, or sqlite:///:memory:."""
    path = urlsplit(url).path
    return path[1:] if path.startswith("/") else path


def open_pool(url):
    path = sqlite_path(url)
    if path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # One connection: SQLite serialises writers anyway, and ":memory:" must
    # stay one database.
    return adbapi.ConnectionPool("sqlite3", path, check_same_thread=False,
                                 cp_min=1, cp_max=1, cp_noisy=False)


class RecordStore:
    def __init__(self, pool):
        self.pool = pool
        self._tables = {}

    def prepare(self, items):
        """Create or extend the table of every table-backed item."""
        return self.pool.runInteraction(self._prepare, [i for i in items if i.fields])

    @staticmethod
    def _prepare(cursor, items):
        for item in items:
            cols = ", ".join(f'"{n}" {FIELD_TYPES[t]}' for n, t in item.fields.items())
            cursor.execute(f'CREATE TABLE IF NOT EXISTS "{item.table_name}" '
                           f'(id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})')
            cursor.execute(f'PRAGMA table_info("{item.table_name}")')
            have = {row[1] for row in cursor.fetchall()}
            for name, kind in item.fields.items():
                if name not in have:
                    cursor.execute(f'ALTER TABLE "{item.table_name}" ADD COLUMN "{name}" '
                                   f'{FIELD_TYPES[kind]}')

    def table(self, item):
        if item.path not in self._tables:
            self._tables[item.path] = RecordTable(self.pool, item)
        return self._tables[item.path]

    def ping(self):
        """A Deferred firing when the database answers a trivial query."""
        return self.pool.runQuery("SELECT 1")

    def close(self):
        self.pool.close()


class RecordTable:
    def __init__(self, pool, item):
        self.pool = pool
        self.item = item
        self.columns = ["id", *item.fields]
        self.booleans = [n for n, kind in item.fields.items() if kind == "boolean"]

    def _row(self, row):
        record = dict(zip(self.columns, row))
        for name in self.booleans:  # SQLite keeps booleans as 0/1
            if record[name] is not None:
                record[name] = bool(record[name])
        return record

    def _check(self, values):
        if not isinstance(values, dict):
            raise errors.BadArguments("record values must be an object")
        unknown = set(values) - set(self.item.fields)
        if unknown:
            raise errors.BadArguments(f"{self.item.path}: unknown fields {sorted(unknown)}")
        return values

    @deferred
    async def select(self, where=None, limit=100, offset=0):
        """Rows as dicts, ``where`` a dict of field equalities."""
        where = self._check(where or {})
        clause = " AND ".join(f'"{k}" = ?' for k in where) or "1"
        sql = (f'SELECT {", ".join(self.columns)} FROM "{self.item.table_name}" '
               f"WHERE {clause} ORDER BY id LIMIT ? OFFSET ?")
        rows = await self.pool.runQuery(sql, (*where.values(), int(limit), int(offset)))
        return [self._row(row) for row in rows]

    @deferred
    async def get(self, record_id):
        rows = await self.pool.runQuery(
            f'SELECT {", ".join(self.columns)} FROM "{self.item.table_name}" WHERE id = ?',
            (int(record_id),))
        return self._row(rows[0]) if rows else None

    @deferred
    async def insert(self, values):
        values = self._check(values)
        return await self.pool.runInteraction(self._insert, values)

    def _insert(self, cursor, values):
        names = ", ".join(f'"{k}"' for k in values)
        marks = ", ".join("?" for _ in values)
        if values:
            cursor.execute(f'INSERT INTO "{self.item.table_name}" ({names}) VALUES ({marks})',
                           tuple(values.values()))
        else:
            cursor.execute(f'INSERT INTO "{self.item.table_name}" DEFAULT VALUES')
        return cursor.lastrowid

    @deferred
    async def update(self, record_id, values):
        values = self._check(values)
        if not values:
            return 0
        sets = ", ".join(f'"{k}" = ?' for k in values)
        return await self.pool.runInteraction(
            _rowcount, f'UPDATE "{self.item.table_name}" SET {sets} WHERE id = ?',
            (*values.values(), int(record_id)))

    @deferred
    async def delete(self, record_id):
        return await self.pool.runInteraction(
            _rowcount, f'DELETE FROM "{self.item.table_name}" WHERE id = ?', (int(record_id),))


def _rowcount(cursor, sql, params):
    cursor.execute(sql, params)
    return cursor.rowcount

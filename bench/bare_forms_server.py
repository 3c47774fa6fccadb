"""The bare baseline for bench/forms.py: twisted.web, the form's SQL, nothing else.

A twisted.web ``Site`` (one process, one reactor) answering the requests
bench/forms.py makes of the demo's ``contact`` form, with the SQL hpxd's
save runs, through SQLAlchemy Core on a SQLite file set up as hpxd's
records layer sets it up (WAL, ``BEGIN IMMEDIATE`` for a write, a pool of
4 connections and 4 threads, every statement off the reactor through
``deferToThreadPool``), and none of hpxd's door and core: no session, no
Origin check, no SIP (``s`` is the record id itself, or ``new``), no
privileges, no rules, no validation, no record lock, no metrics, no gzip
wrapper, no dispatcher::

    GET  /forms/contact[?r=<id>]  a page with the hidden inputs s and
                                  recordHashMd5 (the record read first)
    POST /forms/api/load          urlencoded s + values: QFQ's Minimal
                                  Response with one form-update entry per
                                  field (company shown and required while
                                  has_company is ticked: one line, not rules)
    POST /forms/api/save          urlencoded s, recordHashMd5, tabUniqId +
                                  values. s=new: INSERT. Else, as hpxd's save:
                                  read the record; in one write transaction
                                  read it again, compare its hash, UPDATE;
                                  read it back; answer its new hash in
                                  element-update.recordHashMd5.attr.value

    python bench/bare_forms_server.py --data-dir DIR [--port 0] [--interface 127.0.0.1]

Prints ``bare forms server listening on HOST:PORT`` once it listens.
"""

import argparse
from pathlib import Path

from sqlalchemy import (Boolean, Column, Integer, MetaData, Table, Text, create_engine, event,
                        insert, select, update)
from twisted.internet import reactor
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.web import resource, server

from bare_http_server import BACKLOG, QuietSite, json_reply
from hpxd.core.records import record_hash  # the same hash hpxd's forms send

POOL_SIZE = 4  # hpxd's default [database] pool_size: connections and threads
BUSY_TIMEOUT = 10  # hpxd's default [database] statement_timeout
FIELDS = ("name", "email", "has_company", "company", "country", "avatar")
META = ("s", "r", "recordHashMd5", "tabUniqId", "submit_reason")
TRUE_TEXT = ("on", "true", "1", "yes")

metadata = MetaData()
contacts = Table("contacts", metadata, Column("id", Integer, primary_key=True),
                 Column("name", Text), Column("email", Text), Column("has_company", Boolean),
                 Column("company", Text), Column("country", Text), Column("avatar", Text),
                 Column("position", Integer), sqlite_autoincrement=True)


class Stale(Exception):
    """The record changed since its hash was read (or is gone)."""


# -- the database: SQLite as hpxd's records layer opens it ---------------------------

class Database:
    def __init__(self, path):
        self.engine = create_engine(f"sqlite:///{path}", pool_size=POOL_SIZE, max_overflow=0,
                                    connect_args={"timeout": BUSY_TIMEOUT,
                                                  "check_same_thread": False})
        event.listen(self.engine, "connect", _connected)
        event.listen(self.engine, "begin", _begin)
        self.pool = ThreadPool(minthreads=0, maxthreads=POOL_SIZE, name="bare-database")
        self.pool.start()
        reactor.addSystemEventTrigger("during", "shutdown", self.pool.stop)
        with self.engine.begin() as connection:
            metadata.create_all(connection)

    def read(self, work, *args):
        return deferToThreadPool(reactor, self.pool, self._transaction, False, work, args)

    def write(self, work, *args):
        return deferToThreadPool(reactor, self.pool, self._transaction, True, work, args)

    def _transaction(self, write, work, args):  # in a pool thread
        with self.engine.connect() as connection:
            if write:
                connection.execution_options(bare_write=True)
            with connection.begin():
                return work(connection, *args)


def _connected(dbapi_connection, connection_record):
    dbapi_connection.isolation_level = None  # we emit BEGIN (SQLAlchemy's pysqlite recipe)
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


def _begin(connection):
    write = connection.get_execution_options().get("bare_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def get_record(connection, record_id):
    rows = connection.execute(select(contacts).where(contacts.c.id == record_id)).mappings().all()
    return dict(rows[0]) if rows else None


def insert_record(connection, values):
    return connection.execute(insert(contacts).values(values)).inserted_primary_key[0]


def update_record(connection, record_id, values, expect_hash):
    current = get_record(connection, record_id)
    if current is None or record_hash(current) != expect_hash:
        raise Stale()
    connection.execute(update(contacts).where(contacts.c.id == record_id).values(values))


# -- the resources ---------------------------------------------------------------------

def form_params(request):
    return {name.decode("utf-8"): values[0].decode("utf-8")
            for name, values in request.args.items()}


def values_of(params):
    values = {name: value for name, value in params.items() if name in FIELDS}
    if "has_company" in values:
        values["has_company"] = values["has_company"].strip().lower() in TRUE_TEXT
    return values


def form_update(values):
    ticked = bool(values.get("has_company"))
    return [{"form-element": name, "hidden": name == "company" and not ticked,
             "disabled": False, "required": name == "name" or (name == "company" and ticked)}
            for name in FIELDS]


def answer_later(request, d):
    def done(body):
        request.write(body)
        request.finish()

    def failed(failure):
        failure.trap(Stale, ValueError)
        return json_reply(request, 409, {"status": "error", "message": "stale record"})

    d.addErrback(failed).addCallback(done)
    return server.NOT_DONE_YET


class Page(resource.Resource):
    isLeaf = True

    def __init__(self, database):
        super().__init__()
        self.database = database

    def render_GET(self, request):
        record_id = request.args.get(b"r", [b""])[0].decode("ascii")
        if not record_id:
            return self.page(request, "new", "")
        d = self.database.read(get_record, int(record_id))
        d.addCallback(lambda record: self.page(request, record_id, record_hash(record)))
        return answer_later(request, d)

    def page(self, request, sip, hash_):
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return (f'<form>\n<input type="hidden" name="s" value="{sip}">\n'
                f'<input type="hidden" name="recordHashMd5" id="recordHashMd5" '
                f'value="{hash_}">\n</form>\n').encode("utf-8")


class Load(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        values = values_of(form_params(request))
        return json_reply(request, 200, {"status": "success", "message": "",
                                         "form-update": form_update(values),
                                         "element-update": {}})


class Save(resource.Resource):
    isLeaf = True

    def __init__(self, database):
        super().__init__()
        self.database = database

    def render_POST(self, request):
        params = form_params(request)
        return answer_later(request, self.save(request, params))

    def save(self, request, params):
        values = values_of(params)
        if params.get("s") == "new":
            d = self.database.write(insert_record, values)
        else:
            record_id = int(params["s"])
            d = self.database.read(get_record, record_id)  # hpxd reads it first too
            d.addCallback(lambda _: self.database.write(
                update_record, record_id, values, params.get("recordHashMd5")))
            d.addCallback(lambda _: record_id)
        d.addCallback(self.saved, request, values)
        return d

    def saved(self, record_id, request, values):
        d = self.database.read(get_record, record_id)
        d.addCallback(lambda record: json_reply(request, 200, {
            "status": "success", "message": "saved", "form-update": form_update(values),
            "element-update": {"recordHashMd5": {"attr": {"value": record_hash(record)}}},
            "redirect": "no", "record-id": record_id}))
        return d


def build_site(data_dir):
    database = Database(Path(data_dir) / "bare.sqlite3")
    forms, api = resource.Resource(), resource.Resource()
    forms.putChild(b"contact", Page(database))
    forms.putChild(b"api", api)
    api.putChild(b"load", Load())
    api.putChild(b"save", Save(database))
    root = resource.Resource()
    root.putChild(b"forms", forms)
    return QuietSite(root)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--data-dir", required=True, help="directory of the SQLite file")
    args = parser.parse_args()
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    port = reactor.listenTCP(args.port, build_site(args.data_dir), backlog=BACKLOG,
                             interface=args.interface)
    address = port.getHost()
    print(f"bare forms server listening on {address.host}:{address.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()

"""The records' database: an SQLAlchemy engine on SQLite or PostgreSQL
(psycopg 3), and the Twisted thread pool that every statement runs in.

The reactor never waits for the database. ``read`` and ``write`` hand a
function of a connection to the pool (``deferToThreadPool``), run it in one
transaction, and return a Deferred. A call with no answer within
``statement_timeout`` seconds, its wait for a thread included, fails with
DatabaseUnavailable (505); past the same time the database gives up the
statement itself (PostgreSQL's statement_timeout, SQLite's busy timeout),
so a held lock does not keep a thread for ever. A lost or refused
connection fails the call with 505 too; pooled connections are checked
before each use (``pool_pre_ping``), so when the database is back the next
call simply works, with no restart.
"""

import math
import os

from sqlalchemy import create_engine, event, exc, inspect, make_url, text
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateColumn
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from hpxd.core import errors
from hpxd.core.deferreds import when_done

# Nodes that start at once take turns to create or extend tables: a
# transaction-scoped PostgreSQL advisory lock under this key ("hpxd" in ASCII).
SCHEMA_LOCK = 0x68707864

# SQLAlchemy errors that mean "the database is not there or not answering"
# (connection refused or lost, statement cancelled by its timeout, SQLite
# busy past its timeout, no pooled connection in time). Others are bugs.
UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError,
               exc.DisconnectionError)


def kind_of(url):
    """"sqlite" or "postgresql", from a URL the config check accepted."""
    return make_url(url).get_backend_name()


class Database:
    log = Logger()

    def __init__(self, url, reactor, pool_size=4, connect_timeout=5, statement_timeout=10,
                 name="hpxd"):
        self.url = make_url(url)
        self.reactor = reactor
        self.statement_timeout = statement_timeout
        self.kind = self.url.get_backend_name()
        if self.kind == "sqlite":
            self.engine, threads = _sqlite_engine(self.url, pool_size, statement_timeout)
        else:
            self.engine = _postgresql_engine(self.url, pool_size, connect_timeout,
                                             statement_timeout, name)
            threads = pool_size
        # One thread per pooled connection: a thread never waits for a connection.
        self.pool = ThreadPool(minthreads=0, maxthreads=threads, name="hpxd-database")
        self._down = None  # why the last call failed, while the database is away
        self._closing = None

    @property
    def where(self):
        """The URL for logs and messages, its password hidden."""
        return self.url.render_as_string(hide_password=True)

    def start(self):
        if not self.pool.started:
            self.pool.start()

    def close(self):
        """Stop the threads, then close the pooled connections; a Deferred
        firing when both are done. The statements still running finish
        first (within ``statement_timeout``): that wait, joining threads,
        happens in a thread of the reactor's pool, never on the reactor."""
        if self._closing is None:
            if self.pool.started:
                self._closing = deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                                  self._close)
            else:  # never started: no thread to join, no connection made
                self._closing = defer.maybeDeferred(self._close)
        return when_done(self._closing)

    def _close(self):
        self.pool.stop()
        self.engine.dispose()

    def read(self, work, *args):
        """``work(connection, *args)``, one statement that only reads, in a
        pool thread."""
        return self._run(work, args, write=False)

    def write(self, work, *args):
        """As ``read``, for a transaction that writes (on SQLite it takes the
        write lock at BEGIN, so two writers never deadlock upgrading)."""
        return self._run(work, args, write=True)

    def ping(self):
        """A Deferred firing when the database answers a trivial query."""
        return self.read(lambda connection: connection.execute(text("SELECT 1")).scalar())

    def prepare(self, tables):
        """Create missing tables and add missing columns; never drops a thing.
        Fails with the database's own reason, for the start-up log. A SQLite
        file's directory is made first, as the user the node runs as."""
        d = deferToThreadPool(self.reactor, self.pool, self._make_directory)
        d.addCallback(lambda _: self.write(_prepare, tables))
        return d.addErrback(_with_reason)

    def _make_directory(self):  # in a pool thread
        path = self.url.database if self.kind == "sqlite" else None
        if path not in (None, "", ":memory:"):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def _run(self, work, args, write):
        abandoned = []

        def in_thread():
            if abandoned:  # the caller gave up while this waited for a thread
                return None
            return self._transaction(work, args, write, abandoned)

        def gave_up(result, timeout):
            abandoned.append(True)
            raise self._unavailable(f"no answer within {timeout} s")

        d = deferToThreadPool(self.reactor, self.pool, in_thread)
        d.addTimeout(self.statement_timeout, self.reactor, onTimeoutCancel=gave_up)
        d.addCallbacks(self._answered, self._failed)
        return d

    def _transaction(self, work, args, write, abandoned):
        with self.engine.connect() as connection:
            if not write and self.kind == "postgresql":
                # A read is one statement: it needs no transaction of its own,
                # and this saves the BEGIN and COMMIT round trips. (SQLite's
                # BEGIN costs no I/O; its reads keep it.)
                connection.execution_options(isolation_level="AUTOCOMMIT")
                return work(connection, *args)
            if write:
                connection.execution_options(hpxd_write=True)
            with connection.begin() as transaction:
                result = work(connection, *args)
                if abandoned:
                    # The caller was told 505 meanwhile (the lock it waited
                    # for came free just after): do not write behind its back.
                    transaction.rollback()
                return result

    def _answered(self, result):
        if self._down is not None:
            self._down = None
            self.log.info("database {where} answers again", where=self.where)
        return result

    def _failed(self, failure):
        if failure.check(*UNAVAILABLE):
            error = failure.value
            raise self._unavailable(_reason(error)) from None
        return failure  # our own errors pass; anything else is a bug (code 100, logged)

    def _unavailable(self, reason):
        if self._down is None:  # once per outage, not once per call
            self.log.warn("database {where} unavailable: {reason}", where=self.where,
                          reason=reason)
        self._down = reason
        error = errors.DatabaseUnavailable(
            f"the database is unreachable or did not answer within "
            f"{self.statement_timeout:g} s; try again later")
        error.reason = reason  # for the log: clients are not told hosts or paths
        return error


def _with_reason(failure):
    failure.trap(errors.DatabaseUnavailable)
    raise RuntimeError(failure.value.reason)


def _reason(error):
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return f"{type(original).__name__}: {lines[0] if lines else ''}"


# -- SQLite ------------------------------------------------------------------------

def _sqlite_engine(url, pool_size, statement_timeout):
    """The engine and how many threads may use it at once."""
    # The sqlite3 module's busy timeout: how long a statement waits for a lock.
    options = {"connect_args": {"timeout": statement_timeout, "check_same_thread": False}}
    memory = url.database in (None, "", ":memory:")
    if memory:  # one connection, or each would be a database of its own
        options["poolclass"] = StaticPool
        pool_size = 1
    else:  # its directory is made by Database.prepare, once the node starts
        options.update(pool_size=pool_size, max_overflow=0, pool_timeout=statement_timeout)
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_connected)
    event.listen(engine, "begin", _sqlite_begin)
    return engine, pool_size


def _sqlite_connected(dbapi_connection, connection_record):
    # SQLAlchemy's recipe for real transactions on pysqlite: the driver's own
    # transaction handling off, BEGIN emitted by us (_sqlite_begin).
    dbapi_connection.isolation_level = None
    # WAL: readers do not wait for a writer, nor the writer for readers.
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


def _sqlite_begin(connection):
    write = connection.get_execution_options().get("hpxd_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# -- PostgreSQL -----------------------------------------------------------------------

def _postgresql_engine(url, pool_size, connect_timeout, statement_timeout, name):
    connect_args = {
        "connect_timeout": max(1, math.ceil(connect_timeout)),  # libpq: whole seconds
        # The server cancels any statement (lock waits included) past this.
        "options": f"-c statement_timeout={math.ceil(statement_timeout * 1000)}",
    }
    if "application_name" not in url.query:  # who is who in pg_stat_activity
        connect_args["application_name"] = name
    return create_engine(url.set(drivername="postgresql+psycopg"), pool_size=pool_size,
                         max_overflow=0, pool_timeout=statement_timeout,
                         pool_pre_ping=True, connect_args=connect_args)


# -- schema ---------------------------------------------------------------------------

def _prepare(connection, tables):
    if connection.dialect.name == "postgresql":
        # Several nodes may start at once: one at a time past this point
        # (released at commit). On SQLite the write transaction (BEGIN
        # IMMEDIATE) already keeps other writers out.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
    for table in tables:
        table.create(connection, checkfirst=True)
        _add_columns(connection, table)


def _add_columns(connection, table):
    """Fields added to an item since its table was made become new columns
    (NULL in the rows already there)."""
    have = {column["name"] for column in inspect(connection).get_columns(table.name)}
    quote = connection.dialect.identifier_preparer
    for column in table.columns:
        if column.name not in have:
            ddl = CreateColumn(column).compile(dialect=connection.dialect)
            connection.exec_driver_sql(
                f"ALTER TABLE {quote.format_table(table)} ADD COLUMN {ddl}")

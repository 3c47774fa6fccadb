"""Records: hpxd's record layer against the database driver directly.

    python bench/records.py [--rows 100000] [--seconds 3] [--rounds 3]
                            [--databases sqlite,postgresql] [--postgres URL] [--no-pin]

For each database it makes a throw-away table of ``--rows`` random records
(a SQLite file in a temporary directory; a PostgreSQL database of its own,
dropped at the end, on the server of ``--postgres`` or $HPXD_TEST_POSTGRES),
then measures, in the same run, two ways of asking the same question:

- **hpxd**: ``RecordTable.open`` (filters checked, SQLAlchemy Core statement,
  the database thread pool, a Deferred, records as dicts), one call at a
  time, awaited on the Twisted reactor;
- **driver**: the same SQL through sqlite3 / psycopg 3 on one connection,
  ``execute`` + ``fetchall`` in a loop in one thread.

The query (``open``): 50 records out of ``--rows`` with a filter and an
order: ``price < 500 AND listed``, by ``-price, name``. A second, cheap
query (``get``: one record by id) shows the layer's fixed cost per call.
Rounds alternate (driver, hpxd, hpxd, driver, ...); each line gives the
median queries/s of both and hpxd/driver. Exit status 0 when every round
gave the right answer.

The bench's threads (the reactor, hpxd's database threads, the driver's
loop) are pinned to one CPU unless ``--no-pin``: on a shared virtual
machine a thread that hands work to another and sleeps otherwise pays for
waking an idle CPU, twice per hpxd call, and the rounds scatter.
"""

import argparse
import os
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from twisted.internet import defer, task, threads  # noqa: E402

from hpxd.core.app import Task  # noqa: E402
from hpxd.core.records import open_store  # noqa: E402

FIELDS = {"name": "text", "price": "real", "stock": "integer", "listed": "boolean"}
FILTERS = [["price", "lt", 500.0], ["listed", "eq", True]]
ORDER = ["-price", "name"]
LIMIT = 50
# What hpxd's layer sends for FILTERS/ORDER/LIMIT (NULLs placed and ties
# broken by id the same on both databases), written out for the driver.
OPEN_SQL = ("SELECT id, name, price, stock, listed FROM item_catalog "
            "WHERE price < {p} AND listed = {p} "
            "ORDER BY price DESC NULLS LAST, name ASC NULLS FIRST, id ASC LIMIT {p}")
GET_SQL = "SELECT id, name, price, stock, listed FROM item_catalog WHERE id = {p}"
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


class BenchError(Exception):
    """A failure to report as one line."""


# -- the data --------------------------------------------------------------------

def random_rows(count, seed=7):
    rng = random.Random(seed)
    words = ["pen", "ink", "paper", "clip", "glue", "tape", "card", "pad", "file", "box"]
    return [(f"{rng.choice(words)} {rng.randrange(10 ** 6)}", round(rng.uniform(0, 1000), 2),
             rng.randrange(100), rng.random() < 0.5) for _ in range(count)]


def fill_sqlite(path, rows):
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO item_catalog (name, price, stock, listed) VALUES (?, ?, ?, ?)", rows)
    connection.close()


def fill_postgresql(url, rows):
    import psycopg
    with psycopg.connect(url) as connection:
        with connection.cursor().copy(
                "COPY item_catalog (name, price, stock, listed) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        connection.commit()
        connection.execute("ANALYZE item_catalog")


class PostgresDatabase:
    """A database of the bench's own on the server of ``admin_url``."""

    def __init__(self, admin_url):
        import psycopg
        self.name = f"hpxd_bench_{secrets.token_hex(4)}"
        self.admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
        self.admin.execute(f'CREATE DATABASE "{self.name}"')
        self.url = urlunsplit(urlsplit(admin_url)._replace(path="/" + self.name))

    def drop(self):
        self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.close()


# -- the two ways ----------------------------------------------------------------------

def driver_connection(kind, url):
    if kind == "sqlite":
        return sqlite3.connect(urlsplit(url).path[1:], check_same_thread=False), "?"
    import psycopg
    return psycopg.connect(url, autocommit=True), "%s"


def driver_round(connection, mark, query, seconds):
    """Queries per second through the driver alone, and the last answer."""
    sql, params = query["sql"].format(p=mark), query["params"]
    done, start = 0, time.perf_counter()
    while True:  # at least once: the answer is compared with hpxd's
        rows = connection.execute(sql, params).fetchall()
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed, [row[0] for row in rows]


async def hpxd_round(table, query, seconds):
    done, start = 0, time.perf_counter()
    while True:
        records = await query["hpxd"](table)
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            records = records if isinstance(records, list) else [records]
            return done / elapsed, [record["id"] for record in records]


def queries(rows):
    any_id = len(rows) // 2
    return {
        "open": {"sql": OPEN_SQL, "params": (500.0, True, LIMIT),
                 "hpxd": lambda t: t.open(filters=FILTERS, order_by=ORDER, limit=LIMIT)},
        "get": {"sql": GET_SQL, "params": (any_id,), "hpxd": lambda t: t.get(any_id)},
    }


async def measure(reactor, kind, url, rows, args):
    """{query name: (driver rates, hpxd rates)} for one database."""
    app = Task("bench")
    app.item("catalog", fields=FIELDS)
    store = open_store(url, reactor, statement_timeout=60, max_rows=LIMIT)
    store.start()
    connection = None
    try:
        await store.prepare(app.items())
        await threads.deferToThread(fill_sqlite if kind == "sqlite" else fill_postgresql,
                                    urlsplit(url).path[1:] if kind == "sqlite" else url, rows)
        table = store.table(app.item_by_name("catalog"))
        connection, mark = driver_connection(kind, url)
        results = {}
        for name, query in queries(rows).items():
            results[name] = await interleaved(table, connection, mark, query, args)
        return results
    finally:
        if connection is not None:
            connection.close()
        store.close()


async def interleaved(table, connection, mark, query, args):
    driver, hpxd = [], []
    await hpxd_round(table, query, args.warmup)  # warm both: caches, prepared statements
    await threads.deferToThread(driver_round, connection, mark, query, args.warmup)
    for i in range(args.rounds):
        order = ("driver", "hpxd") if i % 2 == 0 else ("hpxd", "driver")
        answers = {}
        for who in order:
            if who == "driver":
                rate, answers[who] = await threads.deferToThread(
                    driver_round, connection, mark, query, args.seconds)
                driver.append(rate)
            else:
                rate, answers[who] = await hpxd_round(table, query, args.seconds)
                hpxd.append(rate)
        if answers["driver"] != answers["hpxd"]:
            raise BenchError(f"hpxd and the driver answered differently: {answers}")
    return driver, hpxd


# -- running it ------------------------------------------------------------------------

def report(kind, results):
    for name, (driver, hpxd) in results.items():
        d, h = statistics.median(driver), statistics.median(hpxd)
        print(f"{kind:10} {name:4}  driver {d:9.1f} q/s   hpxd {h:9.1f} q/s   "
              f"hpxd/driver {h / d:.2f}   (rounds: driver "
              f"{' '.join(f'{r:.0f}' for r in driver)}; hpxd {' '.join(f'{r:.0f}' for r in hpxd)})",
              flush=True)


async def run(reactor, args):
    rows = random_rows(args.rows)
    for kind in args.databases:
        if kind == "sqlite":
            with tempfile.TemporaryDirectory(prefix="hpxd-bench-") as directory:
                url = f"sqlite:///{directory}/records.sqlite3"
                report(kind, await measure(reactor, kind, url, rows, args))
        else:
            database = PostgresDatabase(args.postgres)
            try:
                report(kind, await measure(reactor, kind, database.url, rows, args))
            finally:
                database.drop()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="records in the table")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each, per query")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before the rounds")
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql")
    parser.add_argument("--postgres", default=os.environ.get("HPXD_TEST_POSTGRES",
                                                             POSTGRES_DEFAULT),
                        help="a PostgreSQL URL whose user may create databases")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="don't pin the bench to one CPU")
    args = parser.parse_args(argv)
    args.databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if not set(args.databases) <= {"sqlite", "postgresql"} or not args.databases:
        parser.error("--databases takes sqlite, postgresql or both")
    if args.rows < LIMIT or args.seconds <= 0 or args.rounds < 1 or args.warmup < 0:
        parser.error(f"--rows >= {LIMIT}, --seconds > 0, --rounds >= 1, --warmup >= 0")
    return args


def pin_to_one_cpu():
    """Pin this process (and the threads it starts later) to its last CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[-1]})
        return cpus[-1]
    return None


def main(argv=None):
    args = parse_args(argv)
    if args.pin:
        cpu = pin_to_one_cpu()
        print(f"pinned to CPU {cpu}" if cpu is not None else "one CPU: not pinned", flush=True)

    async def go(reactor):
        try:
            await run(reactor, args)
        except BenchError as e:
            print(f"bench/records.py: {e}", file=sys.stderr)
            raise SystemExit(1)

    task.react(lambda reactor: defer.ensureDeferred(go(reactor)))


if __name__ == "__main__":
    main()

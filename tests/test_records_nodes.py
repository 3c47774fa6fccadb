"""Records shared by real hpxd nodes (twistd) through one PostgreSQL, and a
real node living through PostgreSQL faults without a restart."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from hpxd.core.passwords import hash_password
from tests.support import RawClient, tcp_config

PASSWORD = "s3cret-user"


@pytest.fixture(scope="module")
def user_hash():
    return hash_password(PASSWORD)


def node_config(user_hash, database_url, extra=""):
    return tcp_config(f'[database]\nurl = "{database_url}"\nstatement_timeout = 1\n'
                      '[auth]\nfailed_login_delay = 0.1\n' + extra,
                      [("ed", user_hash, "user")])


@pytest.fixture
def two_nodes(postgres_url, redis_server, daemons, user_hash):  # daemons stop first
    config = node_config(user_hash, postgres_url,
                         f'[backend]\nkind = "redis"\nredis_url = "{redis_server.url}"\n')
    # Started at once: both create the tables of the demo app in one database.
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda name: daemons(config, name=name), ["a", "b"])
    return a, b


def login(daemon):
    client = RawClient(daemon.tcp_port)
    client.recv()  # greeting
    reply = client.call({"user": "ed", "password": PASSWORD})
    assert reply["data"] == "Authenticated", reply
    return client, reply["session"]


def call(client, session, fname, **kwargs):
    """The call's reply entry: {"fname", "data"} and "error" if it failed."""
    reply = client.call([dict(fname=fname, **kwargs)], session=session)
    assert "error" not in reply, reply
    return reply["data"][0]


def result(client, session, fname, **kwargs):
    entry = call(client, session, fname, **kwargs)
    assert "error" not in entry, entry
    return entry["data"]


def test_a_record_inserted_through_node_a_is_read_through_node_b(two_nodes):
    a, b = two_nodes
    on_a, session_a = login(a)
    on_b, session_b = login(b)
    record_id = result(on_a, session_a, "catalog.add", name="pen", price=1.5)
    read = result(on_b, session_b, "catalog.get", id=record_id)
    assert read["record"] == {"id": record_id, "name": "pen", "price": 1.5}
    assert result(on_b, session_b, "catalog.list",
                  filters=[["name", "eq", "pen"]]) == [read["record"]]
    # A save through B with the hash read through B; then A's stale hash is refused.
    stale = result(on_a, session_a, "catalog.get", id=record_id)["hash"]
    assert result(on_b, session_b, "catalog.save", id=record_id, values={"price": 2.0},
                  expect_hash=read["hash"]) is True
    refused = call(on_a, session_a, "catalog.save", id=record_id, values={"price": 9.0},
                   expect_hash=stale)
    assert refused["error"]["code"] == 416 and "changed since" in refused["error"]["msg"]
    assert result(on_a, session_a, "catalog.get", id=record_id)["record"]["price"] == 2.0


def hpxd_backends(admin, name):
    rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                         "AND application_name = %s", (f"hpxd {name}",))
    return [pid for (pid,) in rows]


def test_a_node_lives_through_postgresql_faults_without_a_restart(postgres_url, daemons,
                                                                  user_hash):
    import psycopg
    node = daemons(node_config(user_hash, postgres_url, '[server]\nname = "north"\n'))
    client, session = login(node)
    assert result(client, session, "catalog.add", name="pen", price=1.5) == 1
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        # 1. its connections killed from a second session: the next call just works
        killed = hpxd_backends(admin, "north")
        assert killed
        for pid in killed:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert result(client, session, "catalog.count") == 1
        # 2. a database that does not answer: 505 within statement_timeout (1 s)
        with psycopg.connect(postgres_url) as holder:
            holder.execute('LOCK TABLE "item_catalog" IN ACCESS EXCLUSIVE MODE')
            started = time.monotonic()
            entry = call(client, session, "catalog.count")
            assert entry["error"]["code"] == 505, entry
            assert time.monotonic() - started < 2.5
            holder.rollback()
    # 3. back: the same process answers again
    assert result(client, session, "catalog.add", name="ink", price=3.0) == 2
    assert node.proc.poll() is None
    log = node.log()
    assert "database" in log and "unavailable" in log and "answers again" in log

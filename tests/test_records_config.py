"""[database]: the URL forms hpxd accepts, the pool and timeout keys, and how
they reach the record store."""

import pytest
import pytest_twisted
from twisted.internet import defer

from hpxd import config as configmod
from hpxd.core.records import store_from_config


def load(text):
    return configmod.from_dict(_toml(text), "<test>")


def _toml(text):
    import tomllib
    return tomllib.loads(text)


def problem(text):
    with pytest.raises(configmod.ConfigError) as info:
        load(text)
    return info.value


def test_defaults():
    database = configmod.load(None).database
    assert (database.pool_size, database.connect_timeout, database.statement_timeout,
            database.max_rows) == (4, 5, 10, 1000)


@pytest.mark.parametrize("url", [
    "postgresql://postgres@127.0.0.1:5432/hpxd",
    "postgresql://hpxd:secret@db.example.com/records",
    "postgresql:///hpxd?host=/run/postgresql",        # a local socket
    "postgresql://db/hpxd?sslmode=verify-full",
    "postgresql+psycopg://db/hpxd",
])
def test_postgresql_urls_are_accepted(url):
    assert load(f'[database]\nurl = "{url}"\n').database_url == url


@pytest.mark.parametrize("url", [
    "postgresql://db:notaport/hpxd",
    "postgresql://db/",
    "postgresql://db",
    "postgresql://db/a/b",
    "postgresql://db/hpxd#x",
    "postgres://db/hpxd",       # SQLAlchemy 2 refuses this old spelling
    "postgresql+psycopg2://db/hpxd",
    "mysql://db/hpxd",
])
def test_other_urls_are_config_errors_naming_the_key(url):
    error = problem(f'[database]\nurl = "{url}"\n')
    assert error.key == "database.url"
    assert "postgresql://USER@HOST[:PORT]/DATABASE" in error.problem
    assert repr(url) in error.problem


@pytest.mark.parametrize("key, value", [
    ("pool_size", 0), ("pool_size", "4"), ("pool_size", 2.5), ("connect_timeout", 0),
    ("connect_timeout", -1), ("statement_timeout", True), ("statement_timeout", 0),
    ("max_rows", 0), ("max_rows", -5), ("bogus", 1),
])
def test_bad_pool_and_timeout_values_name_the_key(key, value):
    text = f"[database]\n{key} = {value!r}\n".replace("True", "true").replace("'", '"')
    assert problem(text).key == f"database.{key}"


def test_the_keys_reach_the_store(reactor, tmp_path):
    config = load(f'[server]\nname = "north"\n[database]\nurl = "sqlite:///{tmp_path}/x.db"\n'
                  "pool_size = 3\nstatement_timeout = 2.5\nmax_rows = 7\n")
    store = store_from_config(config, reactor)
    try:
        assert store.max_rows == 7
        assert store.database.statement_timeout == 2.5
        assert store.database.pool.max == 3
    finally:
        store.close()


def test_a_password_never_shows_in_the_store_s_name(reactor):
    config = load('[database]\nurl = "postgresql://hpxd:s3cret@db.example.com/records"\n')
    store = store_from_config(config, reactor)
    try:
        assert "s3cret" not in store.where and "db.example.com/records" in store.where
    finally:
        store.close()


@pytest_twisted.ensureDeferred
async def test_sqlite_in_memory_is_one_database_for_every_thread(reactor):
    from hpxd.core.app import Task
    task = Task("shop")
    task.item("catalog", fields={"name": "text"})
    store = store_from_config(load('[database]\nurl = "sqlite:///:memory:"\n'), reactor)
    store.start()
    try:
        await store.prepare(task.items())
        table = store.table(task.item_by_name("catalog"))
        await defer.gatherResults([table.insert({"name": str(i)}) for i in range(10)])
        assert await table.count() == 10
    finally:
        await store.close()

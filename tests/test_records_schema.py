"""Tables are created and extended at start-up, on SQLite and PostgreSQL,
without losing data and without a race when several nodes start at once."""

import sqlite3

import pytest_twisted
from twisted.internet import defer

from hpxd.core.app import Task
from tests.support import started_store

NODES = 6  # stores (each its own engine and pool, like nodes) preparing at once


def shop(**fields):
    task = Task("shop")
    task.item("catalog", fields=fields)
    task.item("orders", fields={"total": "real", "paid": "boolean"})
    return task


def prepared(url, reactor, task):
    return started_store(url, reactor, task, statement_timeout=20)


@pytest_twisted.ensureDeferred
async def test_new_fields_become_columns_and_rows_are_kept(database_url, reactor):
    old = shop(name="text")
    store = await prepared(database_url, reactor, old)
    try:
        await store.table(old.item_by_name("catalog")).insert({"name": "kept"})
    finally:
        await store.close()
    new = shop(name="text", stock="integer", added="date")
    store = await prepared(database_url, reactor, new)
    try:
        table = store.table(new.item_by_name("catalog"))
        assert await table.open() == [{"id": 1, "name": "kept", "stock": None, "added": None}]
        await table.update(1, {"stock": 3, "added": "2024-01-05"})
        assert (await table.get(1))["added"] == "2024-01-05"
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_a_field_removed_from_the_app_keeps_its_column_and_data(database_url, reactor):
    full = shop(name="text", note="text")
    store = await prepared(database_url, reactor, full)
    try:
        await store.table(full.item_by_name("catalog")).insert({"name": "a", "note": "kept"})
    finally:
        await store.close()
    store = await prepared(database_url, reactor, shop(name="text"))
    await store.close()
    store = await prepared(database_url, reactor, full)
    try:
        assert (await store.table(full.item_by_name("catalog")).get(1))["note"] == "kept"
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_nodes_starting_at_once_create_and_extend_tables_without_a_race(
        database_url, reactor):
    for task in (shop(name="text"), shop(name="text", stock="integer", seen="datetime")):
        results = await defer.DeferredList(
            [defer.ensureDeferred(prepared(database_url, reactor, task)) for _ in range(NODES)],
            consumeErrors=True)
        stores = [store for ok, store in results if ok]
        try:
            assert [ok for ok, _ in results] == [True] * NODES, [
                r.getErrorMessage() for ok, r in results if not ok]
        finally:
            for store in stores:
                await store.close()
    store = await prepared(database_url, reactor, task)
    try:
        table = store.table(task.item_by_name("catalog"))
        new_id = await table.insert({"name": "x", "stock": 1, "seen": "2024-01-05T10:00:00"})
        assert await table.get(new_id) == {"id": new_id, "name": "x", "stock": 1,
                                           "seen": "2024-01-05T10:00:00"}
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_a_table_made_by_the_adbapi_version_is_used_as_it_is(tmp_path, reactor):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:  # what hpxd wrote before SQLAlchemy
        old.execute('CREATE TABLE "item_catalog" (id INTEGER PRIMARY KEY AUTOINCREMENT, '
                    '"name" TEXT, "listed" INTEGER)')
        old.execute("INSERT INTO item_catalog (name, listed) VALUES ('pen', 1), ('ink', 0)")
    old.close()
    task = Task("shop")
    task.item("catalog", fields={"name": "text", "listed": "boolean"})
    store = await prepared(f"sqlite:///{path}", reactor, task)
    try:
        table = store.table(task.item_by_name("catalog"))
        assert await table.open() == [{"id": 1, "name": "pen", "listed": True},
                                      {"id": 2, "name": "ink", "listed": False}]
        assert await table.insert({"name": "clip", "listed": True}) == 3
    finally:
        await store.close()

"""Records of table-backed items: SQLite through adbapi, in its thread pool."""

import pytest
import pytest_twisted

from hpxd.core import errors
from hpxd.core.app import Task
from hpxd.core.records import RecordStore, open_pool


@pytest.fixture
def task():
    t = Task("shop")
    t.item("catalog", fields={"name": "text", "price": "real", "listed": "boolean"})
    t.item("plain")
    return t


@pytest_twisted.async_yield_fixture
async def store(task, tmp_path):
    s = RecordStore(open_pool(f"sqlite:///{tmp_path}/db/records.sqlite3"))
    await s.prepare(task.items())
    yield s
    s.close()


@pytest_twisted.ensureDeferred
async def test_insert_select_update_delete(store, task):
    table = store.table(task.item_by_name("catalog"))
    first = await table.insert({"name": "pen", "price": 1.5, "listed": True})
    second = await table.insert({"name": "ink", "price": 3.0, "listed": False})
    assert second == first + 1
    rows = await table.select()
    assert rows == [{"id": first, "name": "pen", "price": 1.5, "listed": True},
                    {"id": second, "name": "ink", "price": 3.0, "listed": False}]
    assert await table.select(where={"name": "ink"}) == rows[1:]
    assert await table.select(limit=1, offset=1) == rows[1:]
    assert await table.update(first, {"price": 2.0}) == 1
    assert (await table.get(first))["price"] == 2.0
    assert await table.delete(first) == 1
    assert await table.delete(first) == 0
    assert await table.get(first) is None


@pytest_twisted.ensureDeferred
async def test_values_are_parameters_not_sql(store, task):
    table = store.table(task.item_by_name("catalog"))
    nasty = "x'); DROP TABLE item_catalog; --"
    record_id = await table.insert({"name": nasty})
    assert (await table.get(record_id))["name"] == nasty
    assert len(await table.select()) == 1


@pytest_twisted.ensureDeferred
async def test_unknown_fields_are_refused(store, task):
    table = store.table(task.item_by_name("catalog"))
    for bad in ({"nope": 1}, {'name" = 1; --': 1}):
        with pytest.raises(errors.BadArguments):
            await table.insert(bad)
        with pytest.raises(errors.BadArguments):
            await table.select(where=bad)
    with pytest.raises(errors.BadArguments):
        await table.update(1, ["not", "a", "dict"])


@pytest_twisted.ensureDeferred
async def test_prepare_adds_new_fields_to_an_existing_table(tmp_path):
    url = f"sqlite:///{tmp_path}/grow.sqlite3"
    old = Task("shop")
    old.item("catalog", fields={"name": "text"})
    store = RecordStore(open_pool(url))
    await store.prepare(old.items())
    await store.table(old.item_by_name("catalog")).insert({"name": "kept"})
    store.close()
    new = Task("shop")
    new.item("catalog", fields={"name": "text", "stock": "integer"})
    store = RecordStore(open_pool(url))
    try:
        await store.prepare(new.items())
        rows = await store.table(new.item_by_name("catalog")).select()
        assert rows == [{"id": 1, "name": "kept", "stock": None}]
    finally:
        store.close()


def test_items_without_fields_have_no_table(task):
    assert task.item_by_name("plain").table_name is None
    assert task.item_by_name("catalog").table_name == "item_catalog"

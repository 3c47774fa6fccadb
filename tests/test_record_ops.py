"""Record operations through the dispatcher (hpxd.core.record_ops): what a
door asks for, privileges per change kind, metrics, quitting, on both
session backends and SQLite."""

import pytest
import pytest_twisted

from hpxd.core import errors
from hpxd.core.app import Task
from hpxd.core.passwords import hash_password
from hpxd.core.records import record_hash
from hpxd.core.sessions import Session
from hpxd.core.tree import describe
from tests.support import start_service

ENV = {"door": "unit", "peer": "test"}


def make_app():
    app = Task("shop")
    app.item("catalog", fields={"name": "text", "price": "real", "stock": "integer"},
             caption="The catalog")
    app.item("plain")

    @app.item_by_name("catalog").report
    def price_list(item, title="Prices"):
        from hpxd.app import File
        return File("prices.txt", "text/plain", title.encode())

    @app.item_by_name("catalog").report
    def not_a_file(item):
        return "text"

    return app


ROLES = {
    "viewer": {"privileges": {"*": ["view"]}},
    "adder": {"privileges": {"*": ["view", "create"]}},
    "editor": {"privileges": {"*": ["view", "edit"]}},
    "user": {"privileges": {"*": ["view", "create", "edit", "delete"]}},
    "guest": {"privileges": {"*": ["view"]}},
}


@pytest_twisted.async_yield_fixture
async def service(tmp_path, backend):
    raw = {"server": {"name": "ops", "data_dir": str(tmp_path / "ops"), "shutdown_timeout": 2},
           "tcp": {"listen": ["tcp:0:interface=127.0.0.1"]},
           "backend": backend, "roles": ROLES,
           "users": [{"name": "u", "password_hash": hash_password("pw-pw-pw-pw", log2_n=10),
                      "role": "user"}]}
    s = await start_service(raw, make_app())
    yield s
    await s.stopService()


def as_role(role):
    return Session.transient_guest(role)


def records(service, role, op, **kwargs):
    return service.node.dispatcher.records(as_role(role), "catalog", op, kwargs, ENV)


@pytest_twisted.ensureDeferred
async def test_open_count_aggregate_and_apply_round_trip(service):
    ids = await records(service, "user", "apply", insert=[
        {"name": "pen", "price": 1.5, "stock": 3}, {"name": "ink", "price": 4.0, "stock": 1}])
    assert len(ids) == 2
    rows = await records(service, "viewer", "open", order_by=["-price"], fields=["name"])
    assert rows == [{"id": ids[1], "name": "ink"}, {"id": ids[0], "name": "pen"}]
    assert await records(service, "viewer", "count", filters=[["price", "gt", 2]]) == 1
    assert await records(service, "viewer", "aggregate",
                         funcs={"id": "count", "price": "sum", "name": "max"}) == {
        "id": 2, "price": 5.5, "name": "pen"}
    got = await records(service, "viewer", "get", id=ids[0])
    assert got["hash"] == record_hash(got["record"])
    await records(service, "user", "apply", update=[{"id": ids[0], "stock": 9}],
                  delete=[ids[1]], expect_hash={str(ids[0]): got["hash"]})
    assert await records(service, "viewer", "open", fields=["stock"]) == [
        {"id": ids[0], "stock": 9}]


@pytest_twisted.ensureDeferred
async def test_a_stale_hash_in_apply_writes_nothing(service):
    [first] = await records(service, "user", "apply", insert=[{"name": "pen"}])
    with pytest.raises(errors.StaleRecord):
        await records(service, "user", "apply", insert=[{"name": "new"}],
                      update=[{"id": first, "name": "changed"}], expect_hash={first: "0" * 32})
    assert await records(service, "viewer", "open", fields=["name"]) == [
        {"id": first, "name": "pen"}]


@pytest.mark.parametrize("role, change, allowed", [
    ("viewer", "insert", False), ("adder", "insert", True), ("editor", "insert", False),
    ("adder", "update", False), ("editor", "update", True),
    ("editor", "delete", False), ("user", "delete", True)])
@pytest_twisted.ensureDeferred
async def test_each_change_kind_needs_its_own_privilege(service, role, change, allowed):
    [first] = await records(service, "user", "apply", insert=[{"name": "pen"}])
    kwargs = {"insert": {"insert": [{"name": "new"}]},
              "update": {"update": [{"id": first, "name": "changed"}]},
              "delete": {"delete": [first]}}[change]
    if allowed:
        await records(service, role, "apply", **kwargs)
    else:
        with pytest.raises(errors.PermissionDenied):
            await records(service, role, "apply", **kwargs)
        assert await records(service, "viewer", "open", fields=["name"]) == [
            {"id": first, "name": "pen"}]


@pytest_twisted.ensureDeferred
async def test_one_refused_change_kind_refuses_the_whole_apply(service):
    [first] = await records(service, "user", "apply", insert=[{"name": "pen"}])
    with pytest.raises(errors.PermissionDenied, match="'delete'"):
        await records(service, "editor", "apply", update=[{"id": first, "name": "changed"}],
                      delete=[first])
    assert await records(service, "viewer", "open", fields=["name"]) == [
        {"id": first, "name": "pen"}]


@pytest.mark.parametrize("item, op, kwargs, error", [
    ("nothing", "open", {}, errors.FunctionNotFound),
    ("plain", "open", {}, errors.FunctionNotFound),
    ("catalog", "drop", {}, errors.FunctionNotFound),
    ("catalog", "open", {"where": "1=1"}, errors.BadArguments),
    ("catalog", "open", {"filters": [["nope", "eq", 1]]}, errors.BadArguments),
    ("catalog", "open", {"filters": [["name", "like", "%"]]}, errors.BadArguments),
    ("catalog", "aggregate", {"funcs": {"name": "sum"}}, errors.BadArguments),
    ("catalog", "aggregate", {"funcs": {"price": "stddev"}}, errors.BadArguments),
    ("catalog", "get", {}, errors.BadArguments),
    (99, "open", {}, errors.FunctionNotFound),
])
@pytest_twisted.ensureDeferred
async def test_bad_requests_are_refused_with_the_right_error(service, item, op, kwargs, error):
    with pytest.raises(error):
        await service.node.dispatcher.records(as_role("user"), item, op, kwargs, ENV)


@pytest_twisted.ensureDeferred
async def test_operations_are_counted_and_refused_while_quitting(service):
    dispatcher = service.node.dispatcher
    await records(service, "viewer", "count")
    with pytest.raises(errors.PermissionDenied):
        await records(service, "viewer", "apply", delete=[1])
    calls = dispatcher.metrics.calls()
    assert calls[("unit", "catalog:count", "ok")] == 1
    assert calls[("unit", "catalog:apply", "406")] == 1
    dispatcher.accepting = False
    try:
        with pytest.raises(errors.ShuttingDown):
            await records(service, "viewer", "count")
    finally:
        dispatcher.accepting = True


@pytest_twisted.ensureDeferred
async def test_a_report_returns_its_file_under_its_privilege(service):
    dispatcher = service.node.dispatcher
    file = await dispatcher.report(as_role("viewer"), "catalog", "price_list",
                                   {"title": "Hi"}, ENV)
    assert (file.name, file.content_type, file.data) == ("prices.txt", "text/plain", b"Hi")
    file = await dispatcher.report(as_role("viewer"), "catalog", "price_list", ["Yo"], ENV)
    assert file.data == b"Yo"  # a list: positional, as Jam.py's print sends them
    with pytest.raises(errors.BadArguments):
        await dispatcher.report(as_role("viewer"), "catalog", "price_list", [1, 2], ENV)
    with pytest.raises(errors.FunctionNotFound):
        await dispatcher.report(as_role("viewer"), "catalog", "nope", {}, ENV)
    with pytest.raises(errors.UnhandledError):  # the app's bug, logged; the client sees 100
        await dispatcher.report(as_role("viewer"), "catalog", "not_a_file", {}, ENV)
    with pytest.raises(errors.PermissionDenied):
        await dispatcher.report(as_role("nobody"), "catalog", "price_list", {}, ENV)


def test_the_tree_shows_items_fields_and_this_sessions_privileges(service):
    node = service.node
    tree = describe(node, as_role("adder"))
    assert tree["name"] == "shop"
    [catalog, plain] = tree["items"]
    assert (catalog["name"], catalog["caption"], catalog["parent"]) == (
        "catalog", "The catalog", tree["id"])
    assert [f["name"] for f in catalog["fields"]] == ["name", "price", "stock"]
    assert catalog["privileges"] == {"view": True, "create": True, "edit": False,
                                     "delete": False}
    assert [r["name"] for r in catalog["reports"]] == ["price_list", "not_a_file"]
    assert plain["fields"] == [] and plain["caption"] == "Plain"
    assert describe(node, as_role("nobody"))["items"][0]["reports"] == []

"""hpxd/core/app.py (public as hpxd.app): the task tree and what is callable."""

import pytest

from hpxd import app as public
from hpxd.core import errors
from hpxd.core.app import Function, Item, Task


def make_task():
    task = Task("demo")

    @task.function
    def add(item, a, b):
        return a + b

    catalog = task.item("catalog", fields={"name": "text", "price": "real"})

    @catalog.function
    def test(item, a, b):
        return a + b

    parts = catalog.item("parts")

    @parts.function(requires="edit")
    def count(item):
        return 0

    task.item("orders")
    return task


def test_public_api_reexports():
    assert public.Task is Task and public.Item is Item and public.Function is Function
    assert issubclass(public.ApplicationError, errors.HpxdError)


def test_tree_and_unique_integer_ids():
    task = make_task()
    items = task.items()
    assert [i.path for i in items] == ["", "catalog", "catalog.parts", "orders"]
    ids = [i.id for i in items]
    assert all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    assert len(set(ids)) == len(ids)
    for item in items:
        assert task.item_by_id(item.id) is item
        assert item.task is task
    assert task.item_by_id(999) is None
    assert task.item_by_id("1") is None
    assert task.is_task and not task.item_by_name("catalog").is_task


def test_ids_are_per_task():
    one, two = Task("one"), Task("two")
    a = one.item("a")
    b = two.item("b")
    assert one.item_by_id(a.id) is a and two.item_by_id(b.id) is b
    assert one.item_by_name("b") is None


def test_item_by_name_dotted():
    task = make_task()
    catalog = task.item_by_name("catalog")
    assert catalog.name == "catalog" and catalog.parent is task
    parts = task.item_by_name("catalog.parts")
    assert parts.parent is catalog and parts.path == "catalog.parts"
    assert task.item_by_name("") is task
    assert task.item_by_name("parts") is None
    assert task.item_by_name("catalog.nope") is None
    assert task.item_by_name("nope.parts") is None


def test_table_names_and_fields():
    task = make_task()
    assert task.item_by_name("catalog").table_name == "item_catalog"
    assert task.item_by_name("catalog").fields == {"name": "text", "price": "real"}
    assert task.item_by_name("orders").table_name is None
    sub = task.item_by_name("catalog").item("rows", fields={"x": "integer"})
    assert sub.table_name == "item_catalog__rows"


def test_resolve():
    task = make_task()
    add = task.resolve("add")
    assert add.item is task and add.name == "add" and add.full_name == "add"
    assert add.fn(None, 2, 3) == 5
    test = task.resolve("catalog.test")
    assert test.item is task.item_by_name("catalog") and test.full_name == "catalog.test"
    count = task.resolve("catalog.parts.count")
    assert count.requires == "edit" and count.full_name == "catalog.parts.count"


@pytest.mark.parametrize("fname", [
    "catalog.records", "catalog.fields", "catalog.table_name", "catalog.function",
    "__init__", "__class__", "item", "items", "resolve", "item_by_id", "process",
    "catalog", "catalog.parts", "test", "nope", "catalog.nope", "nope.test",
    "catalog.test.x", "catalog.", "add.x", ".add", "catalog..test", ".catalog.test", ".",
])
def test_resolve_only_registered_functions(fname):
    with pytest.raises(errors.FunctionNotFound) as info:
        make_task().resolve(fname)
    assert info.value.code == 404


@pytest.mark.parametrize("fname", ["", None, 5, ["add"], {"fname": "add"}])
def test_resolve_bad_fname(fname):
    with pytest.raises(errors.InvalidMessage) as info:
        make_task().resolve(fname)
    assert info.value.code == 403


def test_decorator_forms():
    task = Task("t")

    @task.function
    def plain(item):
        return "plain"

    @task.function()
    def called(item):
        return "called"

    @task.function(requires="delete", get=True)
    def guarded(item):
        return "guarded"

    @task.function(name="list")
    def list_(item):
        return "list"

    def direct(item):
        return "direct"
    assert task.function(direct) is direct

    # The decorator gives back the function itself.
    assert plain(None) == "plain" and list_(None) == "list"
    fns = task.functions
    assert set(fns) == {"plain", "called", "guarded", "list", "direct"}
    assert fns["plain"].requires == "view" and fns["plain"].get is False
    assert fns["guarded"].requires == "delete" and fns["guarded"].get is True
    assert fns["list"].fn is list_
    assert task.resolve("list").fn(None) == "list"


def test_signature_is_taken_at_registration():
    task = Task("t")

    def f(item, a):
        return a
    task.function(f)
    function = task.resolve("f")
    assert list(function.signature.parameters) == ["item", "a"]
    function.check((), {"a": 1})
    function.check((1,), {})


def test_check_refuses_arguments_that_do_not_bind():
    task = make_task()
    add = task.resolve("add")
    add.check((), {"a": 1, "b": 2})
    add.check((1, 2), {})
    add.check((1,), {"b": 2})
    for args, kwargs in [((), {"a": 1}), ((), {"a": 1, "b": 2, "c": 3}),
                         ((), {"item": 1, "a": 1, "b": 2}), ((1, 2, 3), {}),
                         ((1,), {"a": 1, "b": 2})]:
        with pytest.raises(errors.BadArguments) as info:
            add.check(args, kwargs)
        assert info.value.code == 413 and info.value.msg.startswith("add: ")


@pytest.mark.parametrize("name", ["bad-name", "1st", "", "a.b", "with space"])
def test_invalid_item_names(name):
    with pytest.raises(ValueError):
        Task("t").item(name)


@pytest.mark.parametrize("name", ["bad-name", "a.b", "x y"])
def test_invalid_task_name(name):
    with pytest.raises(ValueError):
        Task(name)


@pytest.mark.parametrize("name", ["bad-name", "a.b", "9"])
def test_invalid_function_names(name):
    task = Task("t")
    with pytest.raises(ValueError):
        task.function(name=name)(lambda item: None)


@pytest.mark.parametrize("requires", ["fly", "", None, "View"])
def test_invalid_requires(requires):
    with pytest.raises(ValueError):
        Task("t").function(requires=requires)


def test_duplicates_refused():
    task = make_task()
    with pytest.raises(ValueError):
        task.item("catalog")
    with pytest.raises(ValueError):
        task.function(name="add")(lambda item: None)
    # The original stays in place.
    assert task.resolve("add").fn(None, 1, 1) == 2


@pytest.mark.parametrize("fields", [{"id": "integer"}, {"bad-name": "text"},
                                    {"x": "blob"}, {"x": None}])
def test_invalid_fields(fields):
    with pytest.raises(ValueError):
        Task("t").item("things", fields=fields)


def _signatures():
    def two(item, a, b): pass
    def defaulted(item, a, b=1): pass
    def keyword_only(item, a, *, k): pass
    def keyword_default(item, a, *, k=1): pass
    def all_default(item, a=1, b=2): pass
    def none(item): pass
    def star(item, a, *rest): pass
    return [two, defaulted, keyword_only, keyword_default, all_default, none, star]


@pytest.mark.parametrize("fn", _signatures(), ids=lambda f: f.__name__)
def test_check_agrees_with_signature_bind_for_positional_calls(fn):
    """The fast paths of Function.check never accept what Signature.bind
    refuses, nor refuse what it accepts."""
    import inspect
    task = Task("t")
    task.function(fn)
    function = task.resolve(fn.__name__)
    for n in range(5):
        for kwargs in ({}, {"k": 1}, {"b": 1}):
            args = tuple(range(n))
            try:
                inspect.signature(fn).bind(None, *args, **kwargs)
                binds = True
            except TypeError:
                binds = False
            if binds:
                function.check(args, kwargs)
            else:
                with pytest.raises(errors.BadArguments):
                    function.check(args, kwargs)

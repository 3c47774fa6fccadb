"""hpxd/core/dispatch.py through a Node made of memory-backend pieces."""

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from hpxd.backends.memory import MemoryHub, MemoryScope, MemorySessionStore
from hpxd.core import errors
from hpxd.core.app import Task
from hpxd.core.auth import Authenticator, Role
from hpxd.core.app import arguments
from hpxd.core.context import Collector
from hpxd.core.node import Node

ROLES = {
    "guest": Role("guest", privileges={"*": frozenset({"view"})}),
    # Task-level functions are governed by the task's name ("app").
    "editor": Role("editor", privileges={"*": frozenset({"view"}),
                                         "app": frozenset({"view", "edit"}),
                                         "catalog": frozenset()}),
    "admin": Role("admin", admin=True, server_commands=True),
}
GUEST = {"user_name": None, "role": "guest"}
EDITOR = {"user_name": "ed", "role": "editor"}
ADMIN = {"user_name": "root", "role": "admin"}


class App:
    """A task with every kind of function, and a Deferred the test controls."""

    def __init__(self):
        self.pending = []
        task = self.task = Task("app")

        @task.function
        def add(item, a, b):
            return a + b

        @task.function(requires="edit")
        def change(item):
            return "changed"

        @task.function
        def later(item, value):
            return defer.succeed(value * 2)

        @task.function
        def block(item):
            d = defer.Deferred()
            self.pending.append(d)
            return d

        @task.function
        async def both(item, key, value):
            await item.scope.set(key, value)
            return await item.scope.get(key)

        @task.function
        def boom(item):
            raise RuntimeError("secret internals /etc/passwd")

        @task.function
        async def aboom(item):
            raise KeyError("hidden")

        @task.function
        def refuse(item, why):
            raise item.error(why)

        @task.function
        def count(item):
            item.session.data["count"] = item.session.data.get("count", 0) + 1
            return item.session.data["count"]

        @task.function
        def spoil(item):
            item.session.data["bad"] = object()
            return "spoiled"

        @task.function
        def peek(item):
            return dict(item.session.data)

        @task.function
        def context(item):
            return {"name": item.name, "id": item.id, "path": item.path,
                    "door": item.environ["door"], "user": item.session.user_name,
                    "can": [item.can_view(), item.can_create(), item.can_edit(),
                            item.can_delete()],
                    "task": item.task.name}

        @task.function
        def talk(item, value):
            item.send(value)
            return "sent"

        @task.function
        def chatter(item, *values, last="end"):
            for value in values:
                item.send(value)
            return last

        @task.function
        def ordered(item, a, b, /, c=3):
            return [a, b, c]

        catalog = task.item("catalog")

        @catalog.function
        def show(item):
            return item.path


@pytest.fixture
def app():
    return App()


@pytest.fixture
def node(app):
    clock = Clock()
    auth = Authenticator(ROLES, {}, True, "guest", 1.0, clock)
    sessions = MemorySessionStore(60, clock=clock)
    node = Node("unit", app.task, auth, sessions, MemoryScope(), MemoryHub(), records=None)
    node.clock = clock
    return node


ENVIRON = {"door": "unit", "peer": "test"}


@defer.inlineCallbacks
def session_for(node, user_info):
    session = yield node.sessions.create(user_info)
    return session


def call(node, session, fname, *args, **kwargs):
    return node.dispatcher.call(session, fname, args, kwargs, dict(ENVIRON))


@defer.inlineCallbacks
def failure_of(d):
    try:
        yield d
    except Exception as e:  # noqa: BLE001 - the point is to look at it
        return e
    raise AssertionError("the call did not fail")


@pytest_twisted.inlineCallbacks
def test_sync_deferred_and_async_functions(node):
    s = yield session_for(node, GUEST)
    assert (yield call(node, s, "add", a=2, b=3)) == 5
    assert (yield call(node, s, "later", value=21)) == 42
    assert (yield call(node, s, "both", key="k", value={"x": [1, 2]})) == {"x": [1, 2]}
    assert (yield call(node, s, "catalog.show")) == "catalog"


@pytest_twisted.inlineCallbacks
def test_item_context(node):
    s = yield session_for(node, EDITOR)
    info = yield call(node, s, "context")
    assert info == {"name": "app", "id": 1, "path": "", "door": "unit", "user": "ed",
                    "can": [True, False, True, False], "task": "app"}


@pytest_twisted.inlineCallbacks
def test_function_not_found(node):
    s = yield session_for(node, ADMIN)
    for fname in ("nope", "catalog.nope", "catalog.records", "__init__"):
        error = yield failure_of(call(node, s, fname))
        assert isinstance(error, errors.FunctionNotFound) and error.code == 404


@pytest_twisted.inlineCallbacks
def test_permission_denied(node):
    guest = yield session_for(node, GUEST)
    error = yield failure_of(call(node, guest, "change"))
    assert isinstance(error, errors.PermissionDenied) and error.code == 406
    editor = yield session_for(node, EDITOR)
    assert (yield call(node, editor, "change")) == "changed"
    # A per-item override can take "view" away.
    error = yield failure_of(call(node, editor, "catalog.show"))
    assert isinstance(error, errors.PermissionDenied)
    admin = yield session_for(node, ADMIN)
    assert (yield call(node, admin, "catalog.show")) == "catalog"


@pytest_twisted.inlineCallbacks
def test_permission_checked_before_arguments(node):
    guest = yield session_for(node, GUEST)
    error = yield failure_of(call(node, guest, "change", nonsense=1))
    assert isinstance(error, errors.PermissionDenied)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("kwargs", [{"a": 1}, {"a": 1, "b": 2, "c": 3}, {"item": 1}])
def test_bad_arguments(node, kwargs):
    s = yield session_for(node, GUEST)
    error = yield failure_of(call(node, s, "add", **kwargs))
    assert isinstance(error, errors.BadArguments) and error.code == 413


@pytest_twisted.inlineCallbacks
def test_positional_and_keyword_arguments(node):
    s = yield session_for(node, GUEST)
    assert (yield call(node, s, "add", 1, 2)) == 3
    assert (yield call(node, s, "add", 1, b=2)) == 3
    assert (yield call(node, s, "ordered", 1, 2)) == [1, 2, 3]
    assert (yield call(node, s, "ordered", 1, 2, c=4)) == [1, 2, 4]
    collected = Collector()
    result = yield node.dispatcher.call(s, "chatter", (1, 2), {"last": "x"}, ENVIRON, collected)
    assert (result, collected.values) == ("x", [1, 2])


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("args, kwargs, says", [
    ((1, 2, 3), {}, "too many positional arguments"),
    ((1,), {"a": 1, "b": 2}, "multiple values for argument 'a'"),
    ((), {"a": 1}, "missing a required argument: 'b'"),
])
def test_arguments_that_do_not_bind_name_the_function(node, args, kwargs, says):
    s = yield session_for(node, GUEST)
    error = yield failure_of(node.dispatcher.call(s, "add", args, kwargs, ENVIRON))
    assert isinstance(error, errors.BadArguments) and error.code == 413
    assert error.msg.startswith("add: ") and says in error.msg


@pytest_twisted.inlineCallbacks
def test_positional_only_parameters_refuse_keywords(node):
    s = yield session_for(node, GUEST)
    error = yield failure_of(call(node, s, "ordered", a=1, b=2))
    assert isinstance(error, errors.BadArguments) and error.msg.startswith("ordered: ")


@pytest.mark.parametrize("data, expected", [
    (None, ((), {})), ([1, "x"], ([1, "x"], {})), ({"a": 1}, ((), {"a": 1})),
])
def test_wire_arguments(data, expected):
    assert arguments(data) == expected


@pytest.mark.parametrize("data", [5, "text", True, 1.5, ""])
def test_any_other_wire_value_is_the_one_positional_argument(data):
    """As Igor hands ``data`` to a handler: a string, a number or a bool."""
    assert arguments(data) == ((data,), {})


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("fname", ["boom", "aboom"])
def test_unexpected_exception_is_generic_100(node, fname):
    s = yield session_for(node, GUEST)
    error = yield failure_of(call(node, s, fname))
    assert type(error) is errors.UnhandledError
    assert error.code == 100
    assert error.msg == errors.UnhandledError.title
    assert "secret" not in error.msg and "hidden" not in error.msg


@pytest_twisted.inlineCallbacks
def test_item_error_is_application_error(node):
    s = yield session_for(node, GUEST)
    error = yield failure_of(call(node, s, "refuse", why="guests may not test"))
    assert isinstance(error, errors.ApplicationError)
    assert error.as_dict() == {"code": 400, "msg": "guests may not test"}


@pytest_twisted.inlineCallbacks
def test_changed_session_data_is_saved(node):
    s = yield session_for(node, GUEST)
    assert (yield call(node, s, "count")) == 1
    fresh = yield node.sessions.get(s.id)
    assert fresh.data == {"count": 1}
    assert (yield call(node, fresh, "count")) == 2
    again = yield node.sessions.get(s.id)
    assert again.data == {"count": 2}
    assert (yield call(node, again, "peek")) == {"count": 2}


@pytest_twisted.inlineCallbacks
def test_unchanged_session_data_is_not_saved(node):
    s = yield session_for(node, GUEST)
    saved = []
    real_save = node.sessions.save

    def spy(session):
        saved.append(session.id)
        return real_save(session)
    node.sessions.save = spy
    yield call(node, s, "add", a=1, b=1)
    yield call(node, s, "peek")
    yield failure_of(call(node, s, "boom"))
    assert saved == []
    yield call(node, s, "count")
    assert saved == [s.id]


@pytest_twisted.inlineCallbacks
def test_send_goes_to_the_sink_the_door_gave_the_call(node):
    s = yield session_for(node, GUEST)
    got = []
    result = yield node.dispatcher.call(s, "talk", (), {"value": 7}, ENVIRON,
                                        lambda name, value: got.append((name, value)))
    assert result == "sent"
    assert got == [("talk", 7)]


@pytest_twisted.inlineCallbacks
def test_a_value_sent_that_is_not_json_fails_the_call_with_413(node):
    s = yield session_for(node, GUEST)
    got = []
    error = yield failure_of(node.dispatcher.call(s, "chatter", ({1, 2}, 3), {}, ENVIRON,
                                                  lambda name, value: got.append(value)))
    assert isinstance(error, errors.BadArguments) and "item.send" in error.msg
    assert got == []


@pytest_twisted.inlineCallbacks
def test_send_without_a_sink_is_a_clear_error_not_a_silent_drop(node):
    s = yield session_for(node, GUEST)
    error = yield failure_of(call(node, s, "talk", value=7))
    assert isinstance(error, errors.NotStreamable) and error.code == 414
    assert "unit" in error.msg  # names the door


@pytest_twisted.inlineCallbacks
def test_drain_waits_for_calls_in_flight(node, app):
    s = yield session_for(node, GUEST)
    first = call(node, s, "block")
    second = call(node, s, "block")
    assert len(app.pending) == 2 and node.dispatcher.inflight == 2
    drained = node.dispatcher.drain()
    assert not drained.called
    refused = yield failure_of(call(node, s, "add", a=1, b=2))
    assert isinstance(refused, errors.ShuttingDown) and refused.code == 503
    app.pending[0].callback("one")
    assert not drained.called
    app.pending[1].errback(RuntimeError("late failure"))
    assert drained.called
    assert node.dispatcher.inflight == 0
    assert (yield first) == "one"
    error = yield failure_of(second)
    assert isinstance(error, errors.UnhandledError)


@pytest_twisted.inlineCallbacks
def test_drain_when_idle_fires_at_once(node):
    d = node.dispatcher.drain()
    assert d.called
    yield d


@pytest_twisted.inlineCallbacks
def test_node_stop_without_stopper_refuses_calls(node):
    yield node.stop(0)
    s = yield session_for(node, GUEST)
    error = yield failure_of(call(node, s, "add", a=1, b=2))
    assert isinstance(error, errors.ShuttingDown)


@pytest_twisted.inlineCallbacks
def test_giving_up_on_drain_leaves_the_calls_alone(node, app):
    # The stop sequence bounds drain() with a timeout, which cancels it.
    s = yield session_for(node, GUEST)
    first = call(node, s, "block")
    drained = node.dispatcher.drain()
    drained.addTimeout(5, node.clock)
    drained.addErrback(lambda f: f.trap(defer.TimeoutError))
    node.clock.advance(5)
    assert drained.called
    assert not first.called  # the call itself was not cancelled
    app.pending[0].callback("late")
    assert (yield first) == "late"
    assert node.dispatcher.inflight == 0


@pytest_twisted.inlineCallbacks
def test_non_json_session_data_fails_cleanly(node):
    s = yield session_for(node, GUEST)
    yield call(node, s, "count")
    error = yield failure_of(call(node, s, "spoil"))
    assert isinstance(error, errors.UnhandledError) and error.code == 100  # an app bug
    assert (yield node.sessions.get(s.id)).data == {"count": 1}


@pytest_twisted.inlineCallbacks
def test_call_now_answers_plain_calls_at_once_and_defers_the_rest(node):
    """The synchronous entry point doors may use: a plain value when the
    function answered at once and left nothing to save, else a Deferred."""
    s = yield session_for(node, GUEST)
    now = node.dispatcher.call_now
    assert now(s, "add", (), {"a": 2, "b": 3}, ENVIRON) == 5
    assert node.dispatcher.inflight == 0
    later = now(s, "later", (), {"value": 21}, ENVIRON)
    assert isinstance(later, defer.Deferred)
    assert (yield later) == 42
    counted = now(s, "count", (), {}, ENVIRON)  # changes session data: saved first
    assert isinstance(counted, defer.Deferred)
    assert (yield counted) == 1
    assert node.dispatcher.inflight == 0
    assert (yield node.sessions.get(s.id)).data == {"count": 1}


def test_call_now_raises_refusals_and_failures_at_once(node):
    s = node.sessions.create(GUEST).result
    now = node.dispatcher.call_now
    for fname, args, kwargs, error in [("nope", (), {}, errors.FunctionNotFound),
                                       ("add", (1,), {}, errors.BadArguments),
                                       ("boom", (), {}, errors.UnhandledError),
                                       ("refuse", ("no",), {}, errors.ApplicationError)]:
        with pytest.raises(error):
            now(s, fname, args, kwargs, ENVIRON)
    assert node.dispatcher.inflight == 0


def test_a_dropped_call_now_result_cannot_leak_inflight(node, app):
    """A door that drops what call_now returned, without waiting on it,
    still has its call counted out when the function finishes: drain fires."""
    s = node.sessions.create(GUEST).result
    for fname in ("block", "both"):  # a Deferred, and a coroutine awaiting one
        dropped = node.dispatcher.call_now(s, fname, (), {} if fname == "block" else
                                           {"key": "k", "value": 1}, ENVIRON)
        del dropped
    node.dispatcher.call_now(s, "block", (), {}, ENVIRON)  # dropped too
    assert node.dispatcher.inflight == 2  # "both" finished at once on the memory scope
    drained = node.dispatcher.drain()
    assert not drained.called
    app.pending[0].callback("one")
    assert not drained.called
    app.pending[1].callback("two")  # (a failure would be logged as unhandled)
    assert drained.called and node.dispatcher.inflight == 0

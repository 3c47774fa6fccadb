"""``Dispatcher.ext``: the app's ``on_ext_request`` handler run like any call
(counted, settled, refused while quitting, errors mapped)."""

from types import MappingProxyType

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from hpxd.backends.memory import MemoryHub, MemoryScope, MemorySessionStore
from hpxd.core import errors
from hpxd.core.app import Task
from hpxd.core.auth import Authenticator, Role
from hpxd.core.node import Node

ROLES = {"guest": Role("guest", privileges={"*": frozenset({"view"})})}
GUEST = {"user_name": None, "role": "guest"}
ENVIRON = MappingProxyType({"door": "ext", "peer": "test", "headers": MappingProxyType({})})


def node_of(task):
    clock = Clock()
    auth = Authenticator(ROLES, {}, True, "guest", 1.0, clock)
    return Node("unit", task, auth, MemorySessionStore(60, clock=clock), MemoryScope(),
                MemoryHub(), records=None)


@pytest.fixture
def pending():
    return []


@pytest.fixture
def node(pending):
    task = Task("app")

    @task.on_ext_request(public=["ping"])
    def handle(item, path, params, environ):
        if path == "boom":
            raise RuntimeError("secret internals")
        if path == "refuse":
            raise item.error("no such thing")
        if path == "later":
            d = defer.Deferred()
            pending.append(d)
            return d
        if path == "remember":
            item.session.data["seen"] = params
        return {"path": path, "params": params, "door": environ["door"],
                "same": environ is item.environ, "task": item.name}

    return node_of(task)


@defer.inlineCallbacks
def failure_of(d):
    try:
        yield d
    except Exception as e:  # noqa: BLE001 - the point is to look at it
        return e
    raise AssertionError("the request did not fail")


@pytest_twisted.inlineCallbacks
def test_ext_runs_the_handler_with_path_params_and_environ(node):
    session = yield node.sessions.create(GUEST)
    answer = yield node.dispatcher.ext(session, "a/b", {"x": [1]}, ENVIRON)
    assert answer == {"path": "a/b", "params": {"x": [1]}, "door": "ext", "same": True,
                      "task": "app"}
    assert node.dispatcher.metrics.answered["ext"][node.task.ext_handler] == 1


@pytest_twisted.inlineCallbacks
def test_ext_without_a_handler_is_404():
    node = node_of(Task("bare"))
    session = yield node.sessions.create(GUEST)
    error = yield failure_of(node.dispatcher.ext(session, "x", None, ENVIRON))
    assert isinstance(error, errors.FunctionNotFound) and error.http_status == 404


@pytest_twisted.inlineCallbacks
def test_ext_errors_are_mapped_and_a_bug_shows_no_internals(node):
    session = yield node.sessions.create(GUEST)
    bug = yield failure_of(node.dispatcher.ext(session, "boom", None, ENVIRON))
    assert isinstance(bug, errors.UnhandledError) and "secret" not in bug.msg
    refused = yield failure_of(node.dispatcher.ext(session, "refuse", None, ENVIRON))
    assert isinstance(refused, errors.ApplicationError) and refused.msg == "no such thing"
    assert node.dispatcher.inflight == 0


@pytest_twisted.inlineCallbacks
def test_ext_is_counted_in_flight_and_refused_while_quitting(node, pending):
    session = yield node.sessions.create(GUEST)
    later = node.dispatcher.ext(session, "later", None, ENVIRON)
    assert node.dispatcher.inflight == 1
    drained = node.dispatcher.drain()
    refused = yield failure_of(node.dispatcher.ext(session, "ping", None, ENVIRON))
    assert isinstance(refused, errors.ShuttingDown)
    assert not drained.called
    pending[0].callback("done")
    assert drained.called and (yield later) == "done"


@pytest_twisted.inlineCallbacks
def test_ext_saves_the_session_a_handler_changed(node):
    session = node.login.transient_guest()
    yield node.dispatcher.ext(session, "remember", [1, 2], ENVIRON)
    assert not session.transient  # stored now, so the door sets its cookie
    stored = yield node.sessions.get(session.id)
    assert stored.data == {"seen": [1, 2]}

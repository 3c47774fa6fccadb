"""hpxd/backends/memory.py: sessions on a fake clock, scope, hub."""

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from hpxd.backends import memory
from hpxd.backends.memory import MemoryHub, MemoryScope, MemorySessionStore
from hpxd.config import load
from hpxd.core import errors
from hpxd.core.hub import COMMAND, PUSH, HubMessage
from hpxd.core.interfaces import IHub, IHubClient, IScope, ISessionStore
from hpxd.core.sessions import Session
from zope.interface import implementer

GUEST = {"user_name": None, "role": "guest"}
ALICE = {"user_name": "alice", "role": "user"}


def result_of(d):
    """The result of a Deferred that has already fired (memory backend: always)."""
    box = []
    d.addBoth(box.append)
    assert box, "Deferred has not fired"
    return box[0]


def failure_of(d):
    result = result_of(d)
    assert hasattr(result, "check"), f"expected a failure, got {result!r}"
    return result


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(clock):
    return MemorySessionStore(10, clock=clock)


def test_interfaces(store):
    verifyObject(ISessionStore, store)
    verifyObject(IScope, MemoryScope())
    verifyObject(IHub, MemoryHub())


# -- sessions ------------------------------------------------------------------

def test_session_ids_are_long_random_and_distinct(store):
    ids = [result_of(store.create(GUEST)).id for _ in range(200)]
    assert len(set(ids)) == len(ids)
    for sid in ids:
        assert isinstance(sid, str)
        # token_urlsafe: 6 bits per character.
        assert len(sid) * 6 >= 128
    # Not derived from the clock: two made at the same instant differ a lot.
    assert ids[0][:8] != ids[1][:8]


def test_create_and_get(store):
    session = result_of(store.create(ALICE))
    assert isinstance(session, Session)
    assert session.user_info == ALICE and session.data == {}
    got = result_of(store.get(session.id))
    assert got.id == session.id and got.user_info == ALICE
    assert got.user_name == "alice" and got.role == "user"
    assert got is not session


def test_create_copies_user_info(store):
    info = dict(ALICE)
    session = result_of(store.create(info))
    info["role"] = "admin"
    assert result_of(store.get(session.id)).role == "user"


def test_sliding_expiry(store, clock):
    session = result_of(store.create(GUEST))
    for _ in range(5):  # every use extends the lifespan
        clock.advance(9)
        assert result_of(store.get(session.id)).id == session.id
    clock.advance(10)
    failure = failure_of(store.get(session.id))
    assert failure.check(errors.SessionExpired)
    assert failure.value.code == 408
    # Gone for good, even with time running back to normal.
    assert failure_of(store.get(session.id)).check(errors.SessionExpired)


def test_save_extends_lifespan(store, clock):
    session = result_of(store.create(GUEST))
    clock.advance(9)
    result_of(store.save(session))
    clock.advance(9)
    assert result_of(store.get(session.id))


@pytest.mark.parametrize("sid", ["", "nope", None, 42, ["x"]])
def test_unknown_session_is_expired_never_guest(store, sid):
    result_of(store.create(GUEST))
    failure = failure_of(store.get(sid))
    assert failure.check(errors.SessionExpired)


def test_save_roundtrip_and_copies(store):
    session = result_of(store.create(ALICE))
    session.data["cart"] = [1, 2]
    assert result_of(store.save(session)) is None
    got = result_of(store.get(session.id))
    assert got.data == {"cart": [1, 2]}
    got.data["cart"].append(3)  # not saved: the store holds its own copy
    assert result_of(store.get(session.id)).data == {"cart": [1, 2]}


def test_save_of_non_json_data_fails(store):
    session = result_of(store.create(ALICE))
    session.data["bad"] = object()
    d = store.save(session)  # a Deferred, as the interface says, not a raise
    failure = failure_of(d)
    assert failure.check(errors.HpxdError)
    # The stored session is untouched.
    assert result_of(store.get(session.id)).data == {}


def test_save_of_expired_session(store, clock):
    session = result_of(store.create(ALICE))
    result_of(store.delete(session.id))
    assert failure_of(store.save(session)).check(errors.SessionExpired)


def test_delete(store):
    session = result_of(store.create(ALICE))
    assert result_of(store.delete(session.id)) is None
    assert failure_of(store.get(session.id)).check(errors.SessionExpired)
    assert result_of(store.delete("never-existed")) is None


def test_purge(store, clock):
    old = [result_of(store.create(GUEST)) for _ in range(3)]
    clock.advance(5)
    young = [result_of(store.create(GUEST)) for _ in range(2)]
    assert len(store) == 5
    clock.advance(5)  # the old ones reach their end
    assert store.purge() == 3
    assert len(store) == 2
    assert store.purge() == 0
    for session in young:
        assert result_of(store.get(session.id))
    for session in old:
        assert failure_of(store.get(session.id)).check(errors.SessionExpired)


def test_purge_service_on_the_clock(store, clock):
    service = store.service(30)
    service.startService()
    try:
        for _ in range(100):
            result_of(store.create(GUEST))
        clock.advance(11)
        assert len(store) == 100  # not yet purged: the timer runs every 30 s
        clock.advance(19)
        assert len(store) == 0
    finally:
        service.stopService()
    assert clock.getDelayedCalls() == []


def test_build_from_config():
    from twisted.internet.task import Clock as FakeClock
    config = load()
    backend = memory.build(config, FakeClock())
    assert isinstance(backend.sessions, MemorySessionStore)
    assert backend.sessions.lifespan == config.sessions.lifespan_seconds
    assert isinstance(backend.scope, MemoryScope)
    assert isinstance(backend.hub, MemoryHub)
    assert backend.services[0].step == config.sessions.purge_interval_seconds


# -- scope ---------------------------------------------------------------------

def test_scope_roundtrip():
    scope = MemoryScope()
    assert result_of(scope.get("k")) is None
    assert result_of(scope.get("k", "dflt")) == "dflt"
    assert result_of(scope.set("k", {"a": [1, 2.5, None, True, "s"]})) is None
    assert result_of(scope.get("k")) == {"a": [1, 2.5, None, True, "s"]}
    assert result_of(scope.delete("k")) is None
    assert result_of(scope.get("k", 0)) == 0
    assert result_of(scope.delete("k")) is None


def test_scope_falsy_values_are_not_defaults():
    scope = MemoryScope()
    for value in (0, "", [], {}, False):
        result_of(scope.set("k", value))
        assert result_of(scope.get("k", "dflt")) == value


def test_scope_returns_copies():
    scope = MemoryScope()
    original = {"list": [1]}
    result_of(scope.set("k", original))
    original["list"].append(2)
    got = result_of(scope.get("k"))
    assert got == {"list": [1]}
    got["list"].append(3)
    assert result_of(scope.get("k")) == {"list": [1]}


def test_scope_keys_are_strings():
    scope = MemoryScope()
    result_of(scope.set(1, "one"))
    assert result_of(scope.get("1")) == "one"


def test_scope_refuses_non_json():
    scope = MemoryScope()
    failure = failure_of(scope.set("k", {1, 2}))
    assert failure.check(errors.HpxdError)
    assert result_of(scope.get("k")) is None


# -- hub -------------------------------------------------------------------------

@implementer(IHubClient)
class FakeClient:
    def __init__(self, client_id, session_id=None, fail=False):
        self.client_id = client_id
        self.session_id = session_id
        self.fail = fail
        self.got = []

    def deliver(self, message):
        self.got.append(message)
        if self.fail:
            raise RuntimeError("broken client")


@pytest.fixture
def hub():
    hub = MemoryHub()
    hub.clients_ = [FakeClient("bad", "s1", fail=True), FakeClient("a", "s1"),
                    FakeClient("b", "s2"), FakeClient("c", None)]
    for client in hub.clients_:
        verifyObject(IHubClient, client)
        hub.register(client)
    return hub


def got(hub):
    return {c.client_id: c.got for c in hub.clients_}


def test_hub_register_unregister(hub):
    assert {c.client_id for c in hub.clients()} == {"bad", "a", "b", "c"}
    hub.unregister(hub.clients_[3])
    hub.unregister(FakeClient("never"))
    assert {c.client_id for c in hub.clients()} == {"bad", "a", "b"}
    result_of(hub.broadcast("x"))
    assert got(hub)["c"] == []


def test_hub_broadcast_reaches_everyone_despite_a_bad_client(hub):
    assert result_of(hub.broadcast("news", {"n": 1})) is None
    message = HubMessage(PUSH, "news", {"n": 1})
    assert got(hub) == {"bad": [message], "a": [message], "b": [message], "c": [message]}


def test_hub_send_to_session(hub):
    assert result_of(hub.send_to_session("s1", "ping", 5)) is None
    message = HubMessage(PUSH, "ping", 5)
    assert got(hub) == {"bad": [message], "a": [message], "b": [], "c": []}
    result_of(hub.send_to_session("nobody", "ping"))
    assert got(hub)["a"] == [message]


def test_hub_send_to_client(hub):
    assert result_of(hub.send_to_client("b", "ping", [1])) is None
    assert got(hub) == {"bad": [], "a": [], "b": [HubMessage(PUSH, "ping", [1])], "c": []}
    result_of(hub.send_to_client("nobody", "ping"))
    result_of(hub.send_to_client("bad", "ping"))  # raising is contained
    assert len(got(hub)["bad"]) == 1


def test_hub_pushes_carry_their_stream(hub):
    result_of(hub.broadcast("tick", 1, stream="clock"))
    result_of(hub.send_to_session("s2", "part", 2, stream="indexer"))
    result_of(hub.send_to_client("c", "value", 3, "p"))
    assert got(hub)["a"] == [HubMessage(PUSH, "tick", 1, "clock")]
    assert got(hub)["b"] == [HubMessage(PUSH, "tick", 1, "clock"),
                             HubMessage(PUSH, "part", 2, "indexer")]
    assert got(hub)["c"] == [HubMessage(PUSH, "tick", 1, "clock"),
                             HubMessage(PUSH, "value", 3, "p")]
    assert HubMessage(PUSH, "x").stream is None  # pushes without one


def test_hub_command(hub):
    hub.command("serverquit")
    message = HubMessage(COMMAND, "serverquit")
    assert got(hub) == {"bad": [message], "a": [message], "b": [message], "c": [message]}
    assert message.kind == COMMAND and message.data is None


def test_hub_delivery_counts(hub):
    message = HubMessage(PUSH, "x")
    assert hub.deliver(message) == 4
    assert hub.deliver(message, session_id="s1") == 2
    assert hub.deliver(message, client_id="c") == 1
    assert hub.deliver(message, client_id="zzz") == 0


@pytest_twisted.inlineCallbacks
def test_deferreds_are_real_deferreds(store):
    session = yield store.create(GUEST)
    assert isinstance(store.get(session.id), defer.Deferred)
    assert isinstance(MemoryScope().get("x"), defer.Deferred)


def test_get_now_answers_without_a_deferred(store, clock):
    session = result_of(store.create({"user_name": None, "role": "guest"}))
    now = store.get_now(session.id)
    assert now.id == session.id and now.user_info == {"user_name": None, "role": "guest"}
    now.user_info["role"] = "admin"  # a copy: the store is not changed
    assert store.get_now(session.id).role == "guest"
    with pytest.raises(errors.SessionExpired):
        store.get_now("nope")
    with pytest.raises(errors.SessionExpired):
        store.get_now(["not", "a", "string"])

"""hpxd/core/auth.py: roles, privileges and the Authenticator on a fake clock."""


import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from tests.support import wait_until
from hpxd.core import auth as auth_module, errors
from hpxd.core.auth import Authenticator, Role, User
from hpxd.core.passwords import hash_password

HASH = hash_password("right", log2_n=10)
DELAY = 2.0

ROLES = {
    "guest": Role("guest", privileges={"*": frozenset({"view"})}),
    "user": Role("user", privileges={"*": frozenset({"view", "edit"}),
                                     "catalog": frozenset({"view"}),
                                     "secret": frozenset()}),
    "admin": Role("admin", admin=True, server_commands=True),
    "operator": Role("operator", server_commands=True),
}
USERS = {"alice": User("alice", HASH, "user"), "root": User("root", HASH, "admin")}


def make_auth(clock, guest_allowed=True):
    return Authenticator(ROLES, USERS, guest_allowed, "guest", DELAY, clock)


def outcome(d):
    """Collect a Deferred's result or failure without letting it go unhandled."""
    box = []
    d.addBoth(box.append)
    return box


# -- Role --------------------------------------------------------------------

def test_role_default_star():
    role = ROLES["guest"]
    assert role.allows("anything", "view")
    assert not role.allows("anything", "edit")
    assert not role.allows("anything", "delete")


def test_role_per_item_override_replaces_star():
    role = ROLES["user"]
    assert role.allows("orders", "edit")          # from "*"
    assert role.allows("catalog", "view")
    assert not role.allows("catalog", "edit")     # the item's own list wins
    assert not role.allows("secret", "view")      # even an empty one


def test_role_without_privileges_allows_nothing():
    assert not Role("nobody").allows("x", "view")


def test_admin_allows_everything():
    role = ROLES["admin"]
    for privilege in ("view", "create", "edit", "delete"):
        assert role.allows("catalog", privilege)
        assert role.allows("secret", privilege)


def test_authenticator_can_and_unknown_role():
    auth = make_auth(Clock())
    assert auth.can({"role": "user"}, "orders", "edit")
    assert not auth.can({"role": "user"}, "catalog", "edit")
    assert not auth.can({"role": "ghost"}, "orders", "view")
    assert not auth.can({}, "orders", "view")


def test_remembered_answers_stay_right_and_bounded(monkeypatch):
    monkeypatch.setattr(auth_module, "MAX_DECISIONS", 3)
    auth = make_auth(Clock())
    for _ in range(2):  # the second round is answered from memory
        assert auth.can({"role": "user"}, "orders", "edit")
        assert not auth.can({"role": "user"}, "catalog", "edit")
        assert not auth.can({"role": "ghost"}, "orders", "view")
        assert auth.can({"role": "admin"}, "anything", "delete")
        assert not auth.can({"role": ["not", "hashable"]}, "orders", "view")
    assert len(auth._decisions) == 3


def test_can_send_commands():
    auth = make_auth(Clock())
    assert auth.can_send_commands({"user_name": "root", "role": "admin"})
    assert auth.can_send_commands({"user_name": "op", "role": "operator"})
    assert not auth.can_send_commands({"user_name": "alice", "role": "user"})
    assert not auth.can_send_commands({"user_name": None, "role": "guest"})
    assert not auth.can_send_commands({"user_name": "x", "role": "ghost"})


# -- guest -------------------------------------------------------------------

def test_guest_allowed():
    assert make_auth(Clock()).guest() == {"user_name": None, "role": "guest"}


def test_guest_refused():
    with pytest.raises(errors.AuthRequired) as info:
        make_auth(Clock(), guest_allowed=False).guest()
    assert info.value.code == 407


# -- login -------------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_login_success():
    clock = Clock()
    info = yield defer.ensureDeferred(make_auth(clock).login("alice", "right"))
    assert info == {"user_name": "alice", "role": "user"}
    assert clock.getDelayedCalls() == []  # success is not delayed


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("user, password", [("alice", "wrong"), ("mallory", "right")])
def test_failed_login_waits_on_the_clock(user, password):
    clock = Clock()
    d = defer.ensureDeferred(make_auth(clock).login(user, password))
    result = outcome(d)
    # The password check runs in a thread; then the failure waits on the clock.
    yield wait_until(lambda: clock.getDelayedCalls() or result)
    assert result == [], "a failed login must not answer before the delay"
    clock.advance(DELAY - 0.01)
    assert result == []
    clock.advance(0.01)
    assert len(result) == 1
    failure = result[0]
    assert failure.check(errors.WrongCredentials)
    assert failure.value.code == 411
    # The same answer for an unknown user as for a wrong password.
    assert failure.value.msg == errors.WrongCredentials().msg


@pytest_twisted.inlineCallbacks
def test_failed_logins_do_not_block_each_other():
    clock = Clock()
    auth = make_auth(clock)
    results = [outcome(defer.ensureDeferred(auth.login("alice", "bad%d" % i))) for i in range(3)]
    yield wait_until(lambda: len(clock.getDelayedCalls()) == 3)
    clock.advance(DELAY)
    assert all(r and r[0].check(errors.WrongCredentials) for r in results)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("user, password", [
    ("", "right"), ("alice", ""), (None, "right"), ("alice", None), (1, 2), (None, None),
])
def test_missing_credentials(user, password):
    clock = Clock()
    with pytest.raises(errors.MissingCredentials) as info:
        yield defer.ensureDeferred(make_auth(clock).login(user, password))
    assert info.value.code == 412
    assert clock.getDelayedCalls() == []

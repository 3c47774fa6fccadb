"""hpxd/core/auth.py: roles and privileges (logging in: test_unit_login.py)."""


from twisted.internet.task import Clock

from hpxd.core import auth as auth_module
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

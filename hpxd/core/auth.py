"""Users, roles and privileges, shared by every door.

A role grants privileges per item name ("*" is the default for items it does
not name); ``admin`` grants everything; ``server_commands`` lets a session
stop or restart the node. Users come from the config; there is no built-in
user and no way around the password.
"""

from dataclasses import dataclass, field

from twisted.logger import Logger

PRIVILEGES = ("view", "create", "edit", "delete")
MAX_DECISIONS = 4096  # remembered (role, item, privilege) answers; see can()


@dataclass(frozen=True)
class Role:
    name: str
    admin: bool = False
    server_commands: bool = False
    privileges: dict = field(default_factory=dict)

    def allows(self, item_name, privilege):
        if self.admin:
            return True
        granted = self.privileges.get(item_name)
        if granted is None:
            granted = self.privileges.get("*", frozenset())
        return privilege in granted


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    role: str


class Authenticator:
    """Who may do what: the roles, the users and the guest policy from the
    config. Logging in is ``hpxd.core.login.Login``'s job."""

    log = Logger()

    def __init__(self, roles, users, guest_allowed=True, guest_role="guest",
                 failed_login_delay=1.0, clock=None):
        self.roles = roles
        self.users = users
        self.guest_allowed = guest_allowed
        self.guest_role = guest_role
        self.failed_login_delay = failed_login_delay
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self._decisions = {}

    def role(self, name):
        known = self.roles.get(name) if isinstance(name, str) else None
        return known or Role(str(name))  # an unknown role allows nothing

    def can(self, user_info, item_name, privilege):
        # Every call asks this. Roles are fixed once the node runs, so the
        # answer for (role, item, privilege) never changes: remember it.
        # Bounded, because role names come from session data.
        key = (user_info.get("role"), item_name, privilege)
        try:
            return self._decisions[key]
        except (KeyError, TypeError):  # TypeError: a role name that is not hashable
            pass
        allowed = self.role(key[0]).allows(item_name, privilege)
        if len(self._decisions) < MAX_DECISIONS and isinstance(key[0], (str, type(None))):
            self._decisions[key] = allowed
        return allowed

    def can_send_commands(self, user_info):
        return self.role(user_info.get("role")).server_commands

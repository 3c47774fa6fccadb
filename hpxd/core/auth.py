"""Users, roles and privileges, shared by every door.

A role grants privileges per item name ("*" is the default for items it does
not name); ``admin`` grants everything; ``server_commands`` lets a session
stop or restart the node. Users come from the config; there is no built-in
user and no way around the password.
"""

from dataclasses import dataclass, field

from twisted.internet import task
from twisted.logger import Logger

from hpxd.core import errors
from hpxd.core.passwords import DUMMY_HASH, verify_in_thread

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

    def guest(self):
        """The user_info of a guest, or AuthRequired when guests are off."""
        if not self.guest_allowed:
            raise errors.AuthRequired("guests are not allowed on this server: log in")
        return {"user_name": None, "role": self.guest_role}

    async def login(self, user_name, password):
        """Check the password off the reactor; fire with user_info.

        Unknown users cost the same scrypt work as known ones, and every
        failure waits ``failed_login_delay`` on the reactor's clock.
        """
        if not isinstance(user_name, str) or not isinstance(password, str) \
                or not user_name or not password:
            raise errors.MissingCredentials("both 'user' and 'password' must be non-empty strings")
        user = self.users.get(user_name)
        ok = await verify_in_thread(password, user.password_hash if user else DUMMY_HASH)
        if not (ok and user):
            self.log.info("failed login for user {user!r}", user=user_name)
            await task.deferLater(self.clock, self.failed_login_delay, lambda: None)
            raise errors.WrongCredentials()
        return {"user_name": user.name, "role": user.role}

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

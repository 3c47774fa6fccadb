"""The one session type shared by every door and backend."""

import json
import secrets
from dataclasses import dataclass, field

from zope.interface import implementer

from hpxd.core.interfaces import ISession


def new_session_id():
    """256 random bits from the OS: never derived from time or counters."""
    return secrets.token_urlsafe(32)


@implementer(ISession)
@dataclass(slots=True)  # one is made per call: slots make that cheaper
class Session:
    id: str
    user_info: dict
    data: dict = field(default_factory=dict)
    # Not in any store yet: a guest session of a request that came without a
    # session cookie. It is stored (``ISessionStore.add``) only once a call
    # gives it data, so such requests cannot grow the store.
    transient: bool = False

    @classmethod
    def transient_guest(cls, role):
        return cls(new_session_id(), {"user_name": None, "role": role}, {}, transient=True)

    @property
    def is_guest(self):
        return self.user_info.get("user_name") is None

    @property
    def user_name(self):
        return self.user_info.get("user_name")

    @property
    def role(self):
        return self.user_info.get("role")

    def snapshot(self):
        """A canonical text of ``data``: compare two to see if a call changed it."""
        return json.dumps(self.data, sort_keys=True, default=repr)

    def to_json(self):
        return json.dumps({"user_info": self.user_info, "data": self.data})

    @classmethod
    def from_json(cls, session_id, text):
        raw = json.loads(text)
        return cls(session_id, raw["user_info"], raw.get("data") or {})

"""The in-process backend: one node, nothing else to install.

Values are kept as JSON text, as the Redis backend keeps them, so an app that
stores something Redis could not hold fails here too, not only in production.
"""

import json

from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from hpxd.core import errors
from hpxd.core.hub import COMMAND, PUSH, HubMessage, LocalClients, push_text
from hpxd.core.interfaces import IHub, ILeases, IScope, ISessionStore
from hpxd.core.jsonvalues import dump_json
from hpxd.core.sessions import Session, new_session_id


@implementer(ISessionStore)
class MemorySessionStore:
    log = Logger()

    def __init__(self, lifespan, clock=None, max_guests=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.lifespan = lifespan
        self.clock = clock
        self.max_guests = max_guests  # None: no cap
        self._sessions = {}  # id -> [user_info, data as JSON text, expires at]
        self._guests = set()  # ids of the guest sessions among them

    def create(self, user_info):
        return self.add(Session(new_session_id(), dict(user_info), {}))

    def add(self, session):
        try:
            text = dump_json(session.data, "session data")
            if session.is_guest:
                self._make_room_for_a_guest()
        except errors.HpxdError as e:
            return defer.fail(e)
        self._sessions[session.id] = [dict(session.user_info), text,
                                      self.clock.seconds() + self.lifespan]
        if session.is_guest:
            self._guests.add(session.id)
        return defer.succeed(session)

    def _make_room_for_a_guest(self):
        if self.max_guests is None or len(self._guests) < self.max_guests:
            return
        self.purge()  # the expired ones make room first
        if len(self._guests) >= self.max_guests:
            raise errors.TooManyGuests(f"{self.max_guests} guest sessions live on this server "
                                       "([sessions] max_guest_sessions): log in, or retry later")

    def get(self, session_id):
        try:
            return defer.succeed(self.get_now(session_id))
        except errors.HpxdError as e:
            return defer.fail(e)

    def get_now(self, session_id):
        entry = self._sessions.get(session_id) if type(session_id) is str else None
        now = self.clock.seconds()
        if entry is None or entry[2] <= now:
            if entry is not None:
                self._forget(session_id)
            raise errors.SessionExpired()
        entry[2] = now + self.lifespan
        user_info, data_text, _ = entry
        # Copies, as Redis would give: a caller's changes reach the store
        # only through save(). Most sessions carry no data: no parsing then.
        data = json.loads(data_text) if data_text != "{}" else {}
        return Session(session_id, dict(user_info), data)

    def save(self, session):
        entry = self._sessions.get(session.id)
        if entry is None:
            return defer.fail(errors.SessionExpired())
        try:
            entry[1] = dump_json(session.data, "session data")
        except errors.HpxdError as e:
            return defer.fail(e)
        entry[2] = self.clock.seconds() + self.lifespan
        return defer.succeed(None)

    def delete(self, session_id):
        self._forget(session_id)
        return defer.succeed(None)

    def _forget(self, session_id):
        self._sessions.pop(session_id, None)
        self._guests.discard(session_id)

    def expire_in(self, session_id, seconds, only_empty_guest=False):
        entry = self._sessions.get(session_id)
        if entry is not None and not (only_empty_guest and (entry[0].get("user_name") is not None
                                                            or entry[1] != "{}")):
            entry[2] = min(entry[2], self.clock.seconds() + seconds)
        return defer.succeed(None)

    def purge(self):
        now = self.clock.seconds()
        dead = [sid for sid, (_, _, expires) in self._sessions.items() if expires <= now]
        for sid in dead:
            self._forget(sid)
        if dead:
            self.log.debug("purged {n} expired sessions", n=len(dead))
        return len(dead)

    def __len__(self):
        return len(self._sessions)

    def service(self, interval):
        """A service that purges expired sessions every ``interval`` seconds."""
        service = TimerService(interval, self.purge)
        service.clock = self.clock
        return service


@implementer(IScope)
class MemoryScope:
    def __init__(self):
        self._values = {}

    def get(self, key, default=None):
        text = self._values.get(str(key))
        return defer.succeed(default if text is None else json.loads(text))

    def set(self, key, value):
        try:
            self._values[str(key)] = dump_json(value, "scope values")
        except errors.HpxdError as e:
            return defer.fail(e)
        return defer.succeed(None)

    def delete(self, key):
        self._values.pop(str(key), None)
        return defer.succeed(None)


@implementer(ILeases)
class MemoryLeases:
    """One node: a name is held by one holder of this process."""

    def __init__(self, clock):
        self.clock = clock
        self._held = {}  # name -> [holder, value as JSON text, expires at]

    def _holder(self, name):
        entry = self._held.get(name)
        if entry is not None and entry[2] <= self.clock.seconds():
            del self._held[name]
            return None
        return entry

    def acquire(self, name, holder, ttl, value=None):
        entry = self._holder(name)
        if entry is not None and entry[0] != holder:
            return defer.succeed(False)
        try:
            text = dump_json(value, "lease values")
        except errors.HpxdError as e:
            return defer.fail(e)
        self._held[name] = [holder, text, self.clock.seconds() + ttl]
        return defer.succeed(True)

    def renew(self, held, ttl):
        lost = []
        for name, holder in held:
            entry = self._holder(name)
            if entry is None or entry[0] != holder:
                lost.append((name, holder))
            else:
                entry[2] = self.clock.seconds() + ttl
        return defer.succeed(lost)

    def release(self, name, holder):
        entry = self._holder(name)
        if entry is not None and entry[0] == holder:
            del self._held[name]
        return defer.succeed(None)

    def lookup(self, name):
        entry = self._holder(name)
        return defer.succeed(None if entry is None else json.loads(entry[1]))

    def take(self, name, holder, ttl, value=None):
        try:
            text = dump_json(value, "lease values")
        except errors.HpxdError as e:
            return defer.fail(e)
        entry = self._holder(name)
        self._held[name] = [holder, text, self.clock.seconds() + ttl]
        return defer.succeed(None if entry is None else entry[0])


@implementer(IHub)
class MemoryHub(LocalClients):
    """One node: every push is a local delivery."""

    def _push(self, action, data, stream, session_id=None, client_id=None):
        try:
            push_text(action, data, stream)  # what Redis could not carry fails here too
        except errors.HpxdError as e:
            return defer.fail(e)
        self.deliver(HubMessage(PUSH, action, data, stream), session_id, client_id)
        return defer.succeed(None)

    def command(self, name):
        self.deliver(HubMessage(COMMAND, name))


def build(config, reactor):
    from hpxd.backends import Backend
    sessions = MemorySessionStore(config.sessions.lifespan_seconds, reactor,
                                  config.sessions.max_guest_sessions)
    return Backend(sessions, MemoryScope(), MemoryHub(),
                   [sessions.service(config.sessions.purge_interval_seconds)],
                   leases=MemoryLeases(reactor))

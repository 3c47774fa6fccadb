"""Record locks for forms (QFQ's ``dirty``): who is editing which record.

A lock is an ``ILeases`` lease named after the form (or item) and the record
id, held by its owner: a session id plus the browser tab's id (QFQ's
``tabUniqId``), so a second tab of the same session is a second editor. All
state lives in the lease store, so with the Redis backend a lock taken
through node A conflicts through node B, and a lock whose owner vanished
(closed tab, dead node) frees itself when its timeout passes.

Modes (per form):

    exclusive  another owner's lock: ``conflict`` (nothing can be forced)
    advisory   another owner's lock: ``conflict_allow_force``; ``force``
               then takes the lock over (``ILeases.take``, atomic)
    none       nothing is locked: every call answers ``success``

``locked_by_other`` tells a door whether another owner holds a record's
lock (a delete is refused meanwhile). Every other call fires with a
``LockAnswer``: ``status`` is one of QFQ's Lock Response statuses
(``success | conflict | conflict_allow_force`` from here; ``error`` is the
door's, see below), ``message`` a text for the user, ``expires`` the
Unix time the lock (ours, or the one in the way) ends, or None. The form door sends ``status`` and
``message`` as they are. The store does not read records: the door checks
the client's ``recordHashMd5`` against the record before locking (a stale
form answers ``error``); the hash given here is only kept with the lock.
Bad arguments (an unknown mode, a record id that is not an int or text)
fail with ``BadArguments``; a backend away with ``BackendUnavailable``.
"""

import json
import time
from dataclasses import dataclass

from hpxd.core import errors
from hpxd.core.deferreds import deferred

SUCCESS = "success"
ERROR = "error"
CONFLICT = "conflict"
CONFLICT_ALLOW_FORCE = "conflict_allow_force"

EXCLUSIVE = "exclusive"
ADVISORY = "advisory"
NONE = "none"
MODES = (EXCLUSIVE, ADVISORY, NONE)

DEFAULT_TIMEOUT = 900  # QFQ's recordLockTimeoutSeconds
MAX_TEXT = 200  # longest form name, record id or tab id accepted


@dataclass(frozen=True)
class LockAnswer:
    status: str
    message: str = ""
    expires: float = None

    def as_dict(self):
        """QFQ's Lock Response (a Minimal Response)."""
        return {"status": self.status, "message": self.message}


class RecordLocks:
    """Lock, extend, release and force record locks on ``leases`` (ILeases).

    ``timeout``: seconds a lock lives unless extended (QFQ's
    ``recordLockTimeoutSeconds``); ``clock``: for the expiry times told in
    answers (the reactor; a ``task.Clock`` in tests).
    """

    def __init__(self, leases, timeout=DEFAULT_TIMEOUT, clock=None):
        self.leases = leases
        self.timeout = timeout
        self.clock = clock

    def _now(self):
        return self.clock.seconds() if self.clock is not None else time.time()

    @deferred
    async def lock(self, form_or_item, record_id, owner, mode, record_hash=None, tab=None):
        """Take the lock for ``owner`` (again: the timeout restarts)."""
        name, holder = _checked(form_or_item, record_id, owner, mode, tab)
        _check_hash(record_hash)
        if mode == NONE:
            return LockAnswer(SUCCESS)
        expires = self._now() + self.timeout
        value = _value(holder, mode, record_hash, expires)
        if await self.leases.acquire(name, holder, self.timeout, value):
            return LockAnswer(SUCCESS, expires=expires)
        return await self._conflict(name, mode)

    @deferred
    async def extend(self, form_or_item, record_id, owner, mode, record_hash=None, tab=None):
        """Keep ``owner``'s lock another ``timeout`` seconds. A lock that
        expired meanwhile is taken again if nobody else took it; one that
        another owner holds now answers as ``lock`` does."""
        name, holder = _checked(form_or_item, record_id, owner, mode, tab)
        if mode == NONE:
            return LockAnswer(SUCCESS)
        if not await self.leases.renew([(name, holder)], self.timeout):
            return LockAnswer(SUCCESS, expires=self._now() + self.timeout)
        return await self.lock(form_or_item, record_id, owner, mode, record_hash, tab)

    @deferred
    async def release(self, form_or_item, record_id, owner, mode, record_hash=None, tab=None):
        """Free ``owner``'s lock. Releasing a lock one does not hold (any
        more) is no error: it answers ``success`` and frees nothing."""
        name, holder = _checked(form_or_item, record_id, owner, mode, tab)
        if mode != NONE:
            await self.leases.release(name, holder)
        return LockAnswer(SUCCESS)

    @deferred
    async def force(self, form_or_item, record_id, owner, mode, record_hash=None, tab=None):
        """Take the lock over from whoever holds it: only in advisory mode
        (QFQ's answer to ``conflict_allow_force``); in exclusive mode it
        answers as ``lock`` does, and never takes another owner's lock."""
        name, holder = _checked(form_or_item, record_id, owner, mode, tab)
        if mode != ADVISORY:
            return await self.lock(form_or_item, record_id, owner, mode, record_hash, tab)
        _check_hash(record_hash)
        expires = self._now() + self.timeout
        value = _value(holder, mode, record_hash, expires)
        previous = await self.leases.take(name, holder, self.timeout, value)
        if previous is not None and previous != holder:
            return LockAnswer(SUCCESS, "you took over the lock of another user", expires)
        return LockAnswer(SUCCESS, expires=expires)

    @deferred
    async def locked_by_other(self, form_or_item, record_id, owner, tab=None):
        """True while another owner than ``owner`` (+ ``tab``) holds the
        record's lock: for a door refusing a delete meanwhile."""
        name, holder = _checked(form_or_item, record_id, owner, NONE, tab)
        value = await self.leases.lookup(name)
        return isinstance(value, dict) and value.get("holder") != holder

    async def _conflict(self, name, mode):
        value = await self.leases.lookup(name)
        expires = value.get("expires") if isinstance(value, dict) else None
        until = (" until " + time.strftime("%H:%M:%S UTC", time.gmtime(expires))
                 if isinstance(expires, (int, float)) else "")
        if mode == ADVISORY:
            return LockAnswer(CONFLICT_ALLOW_FORCE, "another user is editing this record" + until
                              + ": you may take it over, their changes may then be lost",
                              expires)
        return LockAnswer(CONFLICT, "another user is editing this record" + until
                          + ": reload the form later", expires)


def lock_name(form_or_item, record_id):
    """The lease name: JSON, so no form name and record id can make the
    name of another pair (``a:1``, ``2`` vs ``a``, ``1:2``)."""
    return "record-lock:" + json.dumps([form_or_item, str(record_id)], separators=(",", ":"))


def _value(holder, mode, record_hash, expires):
    # Kept with the lease (server side only: the holder is never told to a client).
    return {"holder": holder, "mode": mode, "record_hash": record_hash, "expires": expires}


def _checked(form_or_item, record_id, owner, mode, tab):
    if mode not in MODES:
        raise errors.BadArguments(f"lock mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not _text(form_or_item):
        raise errors.BadArguments("a record lock needs a form or item name (text)")
    if isinstance(record_id, bool) or not (isinstance(record_id, int) or _text(record_id)):
        raise errors.BadArguments("a record lock needs a record id (an integer or text)")
    if not _text(owner) or any(c.isspace() for c in owner):
        raise errors.BadArguments("a record lock needs an owner (a session id)")
    if tab is not None and (not _text(tab) or any(c.isspace() for c in tab)):
        raise errors.BadArguments("the tab id must be short text")
    holder = owner if tab is None else f"{owner} {tab}"
    return lock_name(form_or_item, record_id), holder


def _check_hash(record_hash):
    if record_hash is not None and not _text(record_hash):
        raise errors.BadArguments("recordHashMd5 must be short text")


def _text(value):
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT

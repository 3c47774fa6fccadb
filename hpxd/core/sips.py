"""SIPs for forms (QFQ's ``s`` parameter): opaque tokens a page carries in
place of the form name, record id and other parameters it must not forge.

QFQ's SIPs are 13-character ``uniqid()`` timestamps kept in one PHP session.
Ours are ``secrets`` tokens (192 bits) stored in the backend's ``ILeases``:
the lease is named ``sip:<token>``, held by the session id, and holds
{session, form, record_id, params}. So a SIP issued on node A resolves on
node B (Redis), and ``resolve`` refuses:

    a token that is missing or not one we make          BadArguments (413)
    an unknown or expired one (or a forged one)          PermissionDenied (406)
    a SIP of another session                             PermissionDenied (406)
    an ``r`` sent next to it that is not the SIP's       PermissionDenied (406)
    a SIP whose session ended (logout or expiry)         SessionExpired (408)

A SIP lives ``ttl`` seconds after its last use (each ``resolve`` renews it).
A session holds at most MAX_SIPS_INDEXED SIPs issued by one node: issuing
one more drops its oldest.
When a session ends, its SIPs go: a logout runs ``session_ended`` (the
node's ``on_session_end`` hook), which drops the SIPs this node issued for
the session; those issued on other nodes, and those of a session that
simply expired, are refused by ``resolve`` (it checks the session is still
live in the session store, shared by every node), dropped then, and
otherwise free themselves when their ``ttl`` passes.
"""

import re
import secrets
from dataclasses import dataclass, field

from hpxd.core import errors
from hpxd.core.deferreds import deferred

TOKEN_BYTES = 24  # 192 random bits, 32 URL-safe characters
TOKEN = re.compile(r"[A-Za-z0-9_-]{32}\Z")
MAX_TEXT = 200  # longest form name or record id accepted
# The per-node index of issued SIPs, for dropping them at logout, is bounded:
# what falls out of it is still refused once its session ends (see above).
MAX_SESSIONS_INDEXED = 10000
# A session's live SIPs issued on one node: past it, the oldest is dropped
# (an old page's SIP then asks for the page again), so a page reloaded over
# and over does not grow the lease store until the TTLs pass.
MAX_SIPS_INDEXED = 1000


@dataclass(frozen=True)
class Sip:
    token: str
    session_id: str
    form: str
    record_id: object = None  # int, text, or None (a new record)
    params: dict = field(default_factory=dict)


class SipStore:
    """Issue and resolve SIPs on ``leases`` (ILeases), checking sessions in
    ``sessions`` (ISessionStore); a SIP lives ``ttl`` seconds after its
    last use."""

    def __init__(self, leases, sessions, ttl):
        self.leases = leases
        self.sessions = sessions
        self.ttl = ttl
        self._issued = {}  # session id -> {token: None}, in issue order

    @deferred
    async def issue(self, session_id, form, record_id=None, params=None):
        """A new SIP for ``session_id`` naming ``form``, ``record_id`` and
        ``params`` (a JSON dict). Fires with the token."""
        if not _text(session_id):
            raise errors.BadArguments("a SIP needs a session id")
        if not _text(form):
            raise errors.BadArguments("a SIP needs a form name (text)")
        if record_id is not None and (isinstance(record_id, bool) or not (
                isinstance(record_id, int) or _text(record_id))):
            raise errors.BadArguments("a SIP's record id must be an integer or text")
        if params is not None and not isinstance(params, dict):
            raise errors.BadArguments("a SIP's parameters must be a dict")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        value = {"session": session_id, "form": form, "record_id": record_id,
                 "params": params or {}}
        # A fresh 192-bit token is never held: False could only mean a
        # broken random source, and must not hand out someone else's SIP.
        if not await self.leases.acquire(name(token), session_id, self.ttl, value):
            raise errors.UnhandledError("a new SIP collided with a live one")
        for old in self._remember(session_id, token):
            # A session's SIPs on this node are bounded: a page viewed over
            # and over must not grow the lease store until the TTLs pass.
            await self.leases.release(name(old), session_id)
        return token

    @deferred
    async def resolve(self, token, session_id, record_id=None):
        """The ``Sip`` of ``token``, if ``session_id`` (the request's live
        session) may use it. ``record_id``: the ``r`` the request sent next
        to the SIP, or None when it sent none (then not compared)."""
        if not isinstance(token, str) or not TOKEN.match(token):
            raise errors.BadArguments("missing or malformed SIP (s)")
        value = await self.leases.lookup(name(token))
        if not isinstance(value, dict):
            raise errors.PermissionDenied("unknown or expired SIP: load the form again")
        if value.get("session") != session_id:
            raise errors.PermissionDenied("this SIP belongs to another session")
        try:
            await self.sessions.get(session_id)  # ended on another node, or expired?
        except errors.SessionExpired:
            await self.leases.release(name(token), session_id)
            raise
        if record_id is not None and _same_id(record_id) != _same_id(value.get("record_id")):
            raise errors.PermissionDenied("the record id (r) does not match the SIP's")
        await self.leases.renew([(name(token), session_id)], self.ttl)
        return Sip(token, session_id, value.get("form"), value.get("record_id"),
                   value.get("params") or {})

    @deferred
    async def session_ended(self, session_id):
        """Drop the SIPs this node issued for ``session_id`` (a logout: the
        node's ``on_session_end`` runs this)."""
        for token in self._issued.pop(session_id, {}):
            await self.leases.release(name(token), session_id)

    def _remember(self, session_id, token):
        """Index ``token``; returns the session's oldest tokens past
        MAX_SIPS_INDEXED, for the caller to drop."""
        tokens = self._issued.pop(session_id, None) or {}
        tokens[token] = None
        evicted = []
        while len(tokens) > MAX_SIPS_INDEXED:
            evicted.append(next(iter(tokens)))
            del tokens[evicted[-1]]
        self._issued[session_id] = tokens  # now the most recently used session
        if len(self._issued) > MAX_SESSIONS_INDEXED:
            del self._issued[next(iter(self._issued))]
        return evicted


def name(token):
    return "sip:" + token


def _same_id(record_id):
    # ``r`` comes as text from a query string; the SIP may hold an int.
    return None if record_id is None else str(record_id)


def _text(value):
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT

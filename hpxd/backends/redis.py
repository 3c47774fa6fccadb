"""The Redis backend (txredisapi): several hpxd nodes share one state.

Keys (``<db>`` is the Redis database number, channels are not per database):

    hpxd:session:<id>   session JSON, TTL = sliding lifespan (GETEX extends it)
    hpxd:guests         sorted set: guest session id -> when it ends at the
                        latest, in ms (for [sessions] max_guest_sessions)
    hpxd:scope:<key>    scope value JSON
    hpxd:lease:<name>   "<holder>\n<value JSON>", TTL = the lease's time (ILeases);
                        record locks and SIPs are leases too (docs/forms.md)
    hpxd:<db>:hub       pub/sub channel of application pushes

Common path cost: one command per reactor turn for all the session reads
of that turn (``READ_SESSIONS``: GETEX per key, in one EVAL); a second only
when a call changed ``session.data``. Server commands never go through
Redis: they act on the node that receives them. Every command goes through
txredisapi's public API (its command methods or ``execute_command``).

A hub message is JSON: ``v`` (HUB_FORMAT), ``node``, ``action``, ``data``,
``stream``, ``session``, ``client``. Fields are read by name, so a field added
later (as ``stream`` was) needs no new format: a node that does not find it
takes None.

When Redis is unreachable every operation fails at once with
``BackendUnavailable`` (504) instead of waiting for a connection; the pool
and the subscriber reconnect by themselves (also when a connection is lost
during its AUTH / SELECT: see ``_Factory``, hpxd's one adapter to
txredisapi's internals), and each up/down transition is logged once.
"""

import json
import secrets
from urllib.parse import unquote, urlsplit

import txredisapi
from twisted.application import service
from twisted.internet import defer, endpoints, ssl, task
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.core.hub import COMMAND, PUSH, HubMessage, LocalClients, push_text
from hpxd.core.interfaces import IHub, ILeases, IScope, ISessionStore
from hpxd.core.jsonvalues import dump_json
from hpxd.core.sessions import Session, new_session_id

HUB_FORMAT = 1  # version of the pub/sub message format
RETRY_INITIAL, RETRY_MAX = 0.5, 2.0  # seconds between reconnection attempts
MAX_REMEMBERED_TEXTS = 1024  # parsed session texts kept by a node; see _session
MAX_BATCH = 256  # session reads sent in one command at most

# Every session read in one reactor turn goes to Redis as ONE command: the
# fixed cost of a command (building it, txredisapi's Deferreds) is then
# shared by all the calls answered in that turn. pcall: a key holding
# something else fails only its own read.
READ_SESSIONS = b"""
local out = {}
for i, key in ipairs(KEYS) do
    out[i] = redis.pcall('GETEX', key, 'EX', ARGV[1])
end
return out
"""


# Guest sessions are counted in a sorted set, each scored by when it ends
# if unused (Redis's own clock, so nodes' clocks do not matter): a new one
# is stored only while fewer than the cap live. A use slides the session's
# expiry but not its score, so a guest used for longer than the lifespan
# drops out of the count early: the cap bounds how many guests are made
# per lifespan, never a user's session.
NOW_MS = b"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
ADD_GUEST = NOW_MS + b"""
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]) * 1000, ARGV[4])
return 1
"""
# PEXPIRE ... LT: never lengthen; a later GETEX (any use) restores the
# lifespan. ARGV[2] = "1": only a guest session that holds no data.
EXPIRE_SESSION_IN = NOW_MS + b"""
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if ARGV[2] == '1' then
    local ok, s = pcall(cjson.decode, v)
    if not ok or type(s) ~= 'table' or type(s['user_info']) ~= 'table' then return 0 end
    local user = s['user_info']['user_name']
    if (user ~= nil and user ~= cjson.null)
            or (type(s['data']) == 'table' and next(s['data']) ~= nil) then return 0 end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'LT')
redis.call('ZADD', KEYS[2], 'XX', 'LT', now + tonumber(ARGV[1]), ARGV[3])
return 1
"""
DELETE_SESSION = b"""
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 0
"""


# Leases (ILeases): a key holds "<holder>\n<value>"; only its holder may
# renew, change or free it (``take`` alone overrides it, on purpose), each
# checked and done in one script so no other node can slip in between the
# check and the write.
ACQUIRE_LEASE = b"""
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. '\\n' then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[3], 'PX', ARGV[2])
return 1
"""
RENEW_LEASES = b"""
local lost = {}
for i, key in ipairs(KEYS) do
    local holder = ARGV[i + 1]
    local v = redis.call('GET', key)
    if v and string.sub(v, 1, #holder + 1) == holder .. '\\n' then
        redis.call('PEXPIRE', key, ARGV[1])
    else
        lost[#lost + 1] = i
    end
end
return lost
"""
TAKE_LEASE = b"""
local v = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[3], 'PX', ARGV[2])
if not v then return false end
local nl = string.find(v, '\\n', 1, true)
if nl then return string.sub(v, 1, nl - 1) end
return v
"""
RELEASE_LEASE = b"""
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. '\\n' then redis.call('DEL', KEYS[1]) end
return 0
"""


class _TLSEndpoint:
    """TLS around a client endpoint, handing txredisapi its own protocol back
    (``wrapClientTLS`` would hand it the TLS wrapper instead)."""

    def __init__(self, wrapped, creator):
        self.wrapped = wrapped
        self.creator = creator

    def connect(self, factory):
        d = self.wrapped.connect(TLSMemoryBIOFactory(self.creator, True, factory))
        return d.addCallback(lambda protocol: protocol.wrappedProtocol)


def parse_url(url):
    """redis[s]://[[user]:password@]host[:port][/db] -> connection settings."""
    parts = urlsplit(url)
    db = parts.path.strip("/")
    return {
        "tls": parts.scheme == "rediss",
        "host": parts.hostname,
        "port": parts.port or 6379,
        "db": int(db) if db else 0,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


def make_endpoint(reactor, settings, connect_timeout, ca_file=""):
    endpoint = _tcp_endpoint(reactor, settings["host"], settings["port"], connect_timeout or None)
    if not settings["tls"]:
        return endpoint
    trust = None
    if ca_file:
        with open(ca_file, "rb") as f:
            trust = ssl.Certificate.loadPEM(f.read())
    # optionsForClientTLS checks the certificate and the host name (service_identity).
    return _TLSEndpoint(endpoint, ssl.optionsForClientTLS(settings["host"], trustRoot=trust))


def _tcp_endpoint(reactor, host, port, timeout):
    """An IP address is connected to as it is: HostnameEndpoint would resolve
    even "127.0.0.1", in the reactor's thread pool, which other work shares
    (a busy pool would delay every reconnection). Only a name is resolved."""
    if isIPAddress(host):
        return endpoints.TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
    if isIPv6Address(host):
        return endpoints.TCP6ClientEndpoint(reactor, host, port, timeout=timeout)
    return endpoints.HostnameEndpoint(reactor, host, port, timeout=timeout)


class _Factory(txredisapi.RedisFactory):
    """hpxd's one adapter to txredisapi's factory (the command pool and the
    hub subscriber both derive from it); tests/test_redis_recovery.py checks
    that what it relies on is still there and still means the same.

    Public API used: ``startConnecting``, ``disconnect``, ``buildProtocol``,
    the protocol's ``whenConnected`` / ``whenDisconnected`` (which tell
    ``connection_made`` / ``connection_lost`` when a connection is usable
    and when it is gone) and the factory's ``deferred``.

    The workaround: txredisapi has no public way to keep reconnecting after
    a failed handshake. Its ``BaseRedisProtocol.connectionMade`` sends AUTH
    and SELECT and, when either fails for ANY reason (a connection lost
    meanwhile too), calls ``factory.stopTrying()``, which stops every
    connection of the factory for good: the node would never talk to Redis
    again. So ``stopTrying`` here stops nothing (hpxd itself never calls it,
    nor ``quit`` / ``shutdown``, its other callers: it stops with
    ``disconnect``), and ``connectionError``, which txredisapi calls next
    with the reason, logs it once. The connection is closed and txredisapi
    connects again, backing off to one attempt every ``RETRY_MAX`` seconds
    while handshakes keep failing (a wrong password: a refusal, logged once,
    retried slowly).
    """

    initialDelay, maxDelay = RETRY_INITIAL, RETRY_MAX
    role = "connection"  # for the log
    log = Logger()

    def __init__(self, link, dbid, size, **options):
        # isLazy=False: txredisapi would otherwise log its own line on every
        # failed handshake, every retry; connectionError logs it once.
        super().__init__(link.where, dbid, size, isLazy=False,
                         password=link.settings["password"],
                         username=link.settings["username"], **options)
        self.link = link
        self._handshake_error = None  # the last one logged; None after a success
        self.deferred.addErrback(self._never_complete)

    @staticmethod
    def _never_complete(failure):
        """txredisapi's ``deferred`` fails (connectionError) when a handshake
        fails before the pool was ever complete; connectionError has logged
        why, and nothing waits on it."""
        failure.trap(ValueError)

    def buildProtocol(self, addr):
        connection = super().buildProtocol(addr)
        connection.whenConnected().addCallback(self._usable)
        return connection

    def _usable(self, connection):
        self._handshake_error = None
        connection.whenDisconnected().addCallback(self.connection_lost)
        self.connection_made(connection)

    def connection_made(self, connection):
        """A connection is usable (its handshake is done)."""

    def connection_lost(self, connection):
        """A connection that was usable is gone."""

    def stopTrying(self):
        return defer.succeed(None)  # see the class's docstring

    def connectionError(self, why):
        super().connectionError(why)
        if why != self._handshake_error:
            self._handshake_error = why
            self.log.warn("Redis at {where}: a {role} connection failed during its handshake "
                          "({why}); reconnecting, backing off to one attempt every {delay} s",
                          where=self.link.where, role=self.role, why=why, delay=self.maxDelay)


class _Connection(txredisapi.RedisProtocol):
    """A pooled connection, with the bookkeeping ``RedisLink.run`` keeps for
    its watchdog (see ``RedisLink._watch``)."""

    outstanding = 0  # commands sent through RedisLink.run, reply not in yet
    last_progress = 0.0  # last reply, or when the first outstanding command went out


class _Pool(_Factory):
    """The command connections: each usable one is the link's to use."""

    protocol = _Connection
    role = "command pool"

    def connection_made(self, connection):
        self.link.connection_made(connection)

    def connection_lost(self, connection):
        self.link.connection_lost(connection)


class _Subscriber(txredisapi.SubscriberProtocol):
    def messageReceived(self, pattern, channel, message):
        self.factory.hub.received(message)


class _SubscriberFactory(_Factory):
    """Listens on the hub channel; subscribes again after every reconnect
    (txredisapi does not restore subscriptions)."""

    protocol = _Subscriber
    role = "hub subscriber"
    hub = None

    def connection_made(self, connection):
        d = connection.subscribe(self.hub.channel)
        d.addCallback(lambda _: self.link.subscription_made(True))
        d.addErrback(lambda f: self.log.warn("cannot subscribe to the hub channel: {e}",
                                             e=f.getErrorMessage()))

    def connection_lost(self, connection):
        self.link.subscription_made(False)


class RedisLink(service.Service):
    """The node's Redis connections, their health, and fail-fast commands."""

    log = Logger()

    def __init__(self, url, pool_size, connect_timeout, reply_timeout, reactor, ca_file=""):
        self.settings = parse_url(url)
        self.where = f"{self.settings['host']}:{self.settings['port']}/{self.settings['db']}"
        self.reactor = reactor
        self.reply_timeout = reply_timeout or None
        self.endpoint = make_endpoint(reactor, self.settings, connect_timeout, ca_file)
        self.connections = []  # the pool's usable ones, oldest first
        self.stopping = False
        self.pool = _Pool(self, self.settings["db"], pool_size,
                          replyTimeout=None,  # see _watch
                          # Replies as Redis sent them: "42" stays a string
                          # (JSON text must reach json.loads as text).
                          convertNumbers=False)
        self.watchdog = task.LoopingCall(self._watch)
        self.watchdog.clock = reactor
        self.subscribers = None
        self.up = None  # unknown until the first connection or failure
        self.subscribed = False
        self._waiting = []
        # For /metrics (read through RedisHub.counts): commands Redis
        # answered, and commands that failed (Redis away, no reply in time,
        # an error reply).
        self.round_trips = self.errors = 0

    def subscriber_factory(self, hub):
        factory = _SubscriberFactory(self, None, 1)
        factory.hub = hub
        self.subscribers = factory
        return factory

    def connection_made(self, connection):
        self.connections.append(connection)
        self.mark(True)

    def connection_lost(self, connection):
        self.connections.remove(connection)
        if not self.connections and not self.stopping:
            self.mark(False, "connection lost")

    def mark(self, up, why=""):
        if up == self.up:
            return
        self.up = up
        if up:
            self.log.info("Redis at {where} is reachable", where=self.where)
            self._check_ready()
        else:
            self.log.warn("Redis at {where} is unreachable ({why}); calls that need it fail "
                          "with 504 until it returns", where=self.where, why=why)

    def subscription_made(self, subscribed):
        self.subscribed = subscribed
        self._check_ready()

    def is_ready(self):
        return self.up and (self.subscribers is None or self.subscribed)

    def _check_ready(self):
        if self.is_ready():
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def ready(self, timeout):
        """Fire once connected and subscribed to the hub channel, or after
        ``timeout`` anyway (the node starts without Redis and recovers when
        it comes)."""
        if self.is_ready():
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiting.append(d)
        d.addTimeout(timeout, self.reactor)
        d.addErrback(self._not_ready, d, timeout)
        return d

    def _not_ready(self, failure, d, timeout):
        if d in self._waiting:
            self._waiting.remove(d)
        if not self.up:
            self.mark(False, f"no connection within {timeout} s")
        elif not self.subscribed:
            self.log.warn("not subscribed to the hub channel within {t} s: pushes from "
                          "other nodes wait until it is", t=timeout)

    def run(self, command, *args, **kwargs):
        """One Redis command: ``command`` names a public method of txredisapi's
        protocol (``"execute_command"`` for any command by name). A Deferred
        (plain callbacks: this is every call's path); BackendUnavailable at
        once when Redis is away."""
        try:
            connection = self._connection()
            d = getattr(connection, command)(*args, **kwargs)
        except (errors.BackendUnavailable, txredisapi.ConnectionError) as e:
            self.errors += 1
            return defer.fail(self._unavailable(e))
        if not connection.outstanding:  # its reply clock starts now
            connection.last_progress = self.reactor.seconds()
        connection.outstanding += 1
        # First on the chain: nothing the caller adds can delay the count.
        # (A caller cancelling d would count its reply early; nothing does.)
        # One callback entry for both jobs: this is on every call's path.
        return d.addBoth(self._answered, connection)

    def _answered(self, result, connection):
        connection.outstanding -= 1
        connection.last_progress = self.reactor.seconds()
        if isinstance(result, Failure):
            self.errors += 1
            if result.check(txredisapi.ConnectionError):
                raise self._unavailable(result.value)  # TimeoutError is one too
        self.round_trips += 1  # a reply came (an error reply too)
        if not self.up:  # a reply: Redis is back, even if no connection was new
            self.mark(True)
        return result

    def _watch(self):
        """Drop a connection whose replies are overdue; txredisapi then fails
        its waiting commands (ConnectionError: 504). One periodic check
        instead of txredisapi's timer per command (armed and cancelled on
        every call). Cancelling one command's Deferred instead would not do:
        its reply would still come, and the connection stay stuck."""
        now = self.reactor.seconds()
        for connection in list(self.connections):
            if connection.outstanding and now - connection.last_progress > self.reply_timeout:
                self.mark(False, f"no reply within {self.reply_timeout} s")
                connection.transport.abortConnection()

    def _unavailable(self, error):
        self.mark(False, str(error) or type(error).__name__)
        if isinstance(error, errors.BackendUnavailable):
            return error
        return errors.BackendUnavailable(f"Redis at {self.where} did not answer")

    def _connection(self):
        """The oldest usable pooled connection. Commands issued in one
        reactor turn on one connection go out in one write and their replies
        come back in one read: Redis pipelining for free. Replies on a
        connection come in order, so commands may share it (as txredisapi's
        own handler does for non-blocking commands); the others stand by for
        failover."""
        if not self.connections:
            raise errors.BackendUnavailable(f"Redis at {self.where} is unreachable")
        return self.connections[0]

    def startService(self):
        super().startService()
        if self.reply_timeout:
            self.watchdog.start(max(0.1, self.reply_timeout / 4), now=False)
        self.pool.startConnecting(self.endpoint)
        if self.subscribers is not None:
            self.subscribers.startConnecting(self.endpoint)

    def stopService(self):
        super().stopService()
        self.stopping = True
        if self.watchdog.running:
            self.watchdog.stop()
        factories = [f for f in (self.pool, self.subscribers) if f is not None]
        return defer.DeferredList([f.disconnect() for f in factories], consumeErrors=True)


@implementer(ISessionStore)
class RedisSessionStore:
    GUESTS = "hpxd:guests"

    def __init__(self, link, lifespan, max_guests=None):
        self.link = link
        self.lifespan = lifespan
        self.max_guests = max_guests  # None: no cap
        self._lifespan_word = str(lifespan).encode("ascii")
        self._user_infos = {}  # session JSON without data -> its user_info
        self._batch = []  # (key, session id, Deferred) read at the end of this turn

    @staticmethod
    def key(session_id):
        return "hpxd:session:" + session_id

    def create(self, user_info):
        return self.add(Session(new_session_id(), dict(user_info), {}))

    @deferred
    async def add(self, session):
        text = dump_json({"user_info": session.user_info, "data": session.data}, "session data")
        if not session.is_guest or self.max_guests is None:
            await self.link.run("set", self.key(session.id), text, expire=self.lifespan)
            return session
        added = await self.link.run("execute_command", b"EVAL", ADD_GUEST, b"2",
                                    self.key(session.id), self.GUESTS, self.lifespan, text,
                                    self.max_guests, session.id)
        if not int(added):
            raise errors.TooManyGuests(f"{self.max_guests} guest sessions live on this server "
                                       "([sessions] max_guest_sessions): log in, or retry later")
        return session

    def get(self, session_id):
        if not isinstance(session_id, str) or not session_id:
            return defer.fail(errors.SessionExpired())
        try:  # bytes go out as they are; Redis strings are length-prefixed, any bytes fit
            key = self.key(session_id).encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: no session has such an id
            return defer.fail(errors.SessionExpired())
        d = defer.Deferred()
        if not self._batch:
            self.link.reactor.callLater(0, self._read_batch)  # at the end of this turn
        self._batch.append((key, session_id, d))
        if len(self._batch) >= MAX_BATCH:
            self._read_batch()
        return d

    def _read_batch(self):
        """GETEX every key asked for since the last batch: it reads each
        session and slides its expiry, in one round trip."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        keys = [key for key, _, _ in batch]
        d = self.link.run("execute_command", b"EVAL", READ_SESSIONS, b"%d" % len(keys), *keys,
                          self._lifespan_word)
        d.addBoth(self._batch_read, batch)

    def _batch_read(self, replies, batch):
        if isinstance(replies, Failure) or not isinstance(replies, list) \
                or len(replies) != len(batch):
            failure = replies if isinstance(replies, Failure) else None
            error = self._unreadable(failure, replies)
            for _, _, d in batch:
                d.errback(error)
            return
        for (_, session_id, d), reply in zip(batch, replies):
            try:
                session = self._loaded(reply, session_id)
            except errors.HpxdError as e:
                d.errback(e)
            else:
                d.callback(session)

    def _unreadable(self, failure, replies):
        if failure is not None and failure.check(errors.HpxdError):
            return failure.value  # 504: Redis is away
        self.link.log.error("Redis could not read sessions: {why}",
                            why=failure.getErrorMessage() if failure else repr(replies)[:200])
        return errors.UnhandledError()

    def get_now(self, session_id):
        return None  # Redis must be asked: use get()

    def _loaded(self, text, session_id):
        """One read's reply -> the session; SessionExpired when there is
        none; 100 (logged) when the key holds something we did not write
        there (not our JSON, or not a string: WRONGTYPE)."""
        if text is None:
            raise errors.SessionExpired()
        try:
            if isinstance(text, Exception):
                raise text
            return self._session(text, session_id)
        except Exception:
            self.link.log.failure("unusable Redis value for session {id!r}",
                                  id=session_id[:100])
            raise errors.UnhandledError() from None

    def _session(self, text, session_id):
        # Most sessions hold no data, so the same text comes back call after
        # call: remember its user_info instead of parsing it every time. The
        # text itself is read from Redis on every call, so nothing goes stale.
        user_info = self._user_infos.get(text)
        if user_info is None:
            session = Session.from_json(session_id, text)
            if not session.data:
                if len(self._user_infos) >= MAX_REMEMBERED_TEXTS:
                    self._user_infos.clear()
                self._user_infos[text] = dict(session.user_info)
            return session
        return Session(session_id, dict(user_info), {})

    @deferred
    async def save(self, session):
        text = dump_json({"user_info": session.user_info, "data": session.data}, "session data")
        # XX: never resurrect a session that expired or was deleted meanwhile.
        ok = await self.link.run("execute_command", "SET", self.key(session.id), text,
                                 "EX", self.lifespan, "XX")
        if ok is None:
            raise errors.SessionExpired()

    @deferred
    async def delete(self, session_id):
        await self.link.run("execute_command", b"EVAL", DELETE_SESSION, b"2",
                            self.key(session_id), self.GUESTS, session_id)

    @deferred
    async def expire_in(self, session_id, seconds, only_empty_guest=False):
        await self.link.run("execute_command", b"EVAL", EXPIRE_SESSION_IN, b"2",
                            self.key(session_id), self.GUESTS, max(1, int(seconds * 1000)),
                            b"1" if only_empty_guest else b"0", session_id)


@implementer(IScope)
class RedisScope:
    def __init__(self, link):
        self.link = link

    @deferred
    async def get(self, key, default=None):
        text = await self.link.run("get", "hpxd:scope:" + str(key))
        return default if text is None else json.loads(text)

    @deferred
    async def set(self, key, value):
        await self.link.run("set", "hpxd:scope:" + str(key), dump_json(value, "scope values"))

    @deferred
    async def delete(self, key):
        await self.link.run("delete", "hpxd:scope:" + str(key))


@implementer(ILeases)
class RedisLeases:
    """Leases shared by every node (see the scripts above)."""

    def __init__(self, link):
        self.link = link

    @staticmethod
    def key(name):
        return "hpxd:lease:" + name

    @staticmethod
    def _ms(ttl):
        return b"%d" % max(1, int(ttl * 1000))

    @deferred
    async def acquire(self, name, holder, ttl, value=None):
        text = dump_json(value, "lease values")
        taken = await self.link.run("execute_command", b"EVAL", ACQUIRE_LEASE, b"1",
                                    self.key(name), holder, self._ms(ttl), text)
        return int(taken) == 1

    @deferred
    async def renew(self, held, ttl):
        if not held:
            return []
        keys = [self.key(name) for name, _ in held]
        lost = await self.link.run("execute_command", b"EVAL", RENEW_LEASES, b"%d" % len(keys),
                                   *keys, self._ms(ttl), *(holder for _, holder in held))
        return [held[int(i) - 1] for i in lost or ()]

    @deferred
    async def release(self, name, holder):
        await self.link.run("execute_command", b"EVAL", RELEASE_LEASE, b"1", self.key(name),
                            holder)

    @deferred
    async def lookup(self, name):
        text = await self.link.run("get", self.key(name))
        if text is None:
            return None
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text.partition("\n")[2])

    @deferred
    async def take(self, name, holder, ttl, value=None):
        text = dump_json(value, "lease values")
        previous = await self.link.run("execute_command", b"EVAL", TAKE_LEASE, b"1",
                                       self.key(name), holder, self._ms(ttl), text)
        if isinstance(previous, bytes):
            previous = previous.decode("utf-8")
        return previous


def _none(result):
    return None  # PUBLISH answers how many nodes listened; IHub promises None


@implementer(IHub)
class RedisHub(LocalClients):
    """Local delivery at once, and Redis pub/sub to the other nodes.

    A node ignores its own messages when they come back from Redis, so each
    push reaches each local client exactly once. Pub/sub is at-most-once: a
    node that is cut off from Redis misses what was published meanwhile.
    """

    def __init__(self, link):
        super().__init__()
        self.link = link
        self.node_id = secrets.token_hex(8)
        self.channel = f"hpxd:{link.settings['db']}:hub"
        self._bad_versions = set()
        self.messages_in = self.messages_out = 0  # from and to the other nodes

    def counts(self):
        """The backend's counts for /metrics (hpxd.core.metrics)."""
        return {"hub_in": self.messages_in, "hub_out": self.messages_out,
                "round_trips": self.link.round_trips, "errors": self.link.errors}

    def _push(self, action, data, stream, session_id=None, client_id=None):
        """Deliver here at once, then publish to the other nodes (a push to
        one client that is here is not published). Nothing is delivered
        anywhere unless the push is JSON."""
        try:
            push_text(action, data, stream)
            text = dump_json({"v": HUB_FORMAT, "node": self.node_id, "action": action,
                              "data": data, "stream": stream, "session": session_id,
                              "client": client_id}, "pushed data")
        except errors.HpxdError as e:
            return defer.fail(e)
        here = self.deliver(HubMessage(PUSH, action, data, stream), session_id, client_id)
        if client_id is not None and here:
            return defer.succeed(None)
        self.messages_out += 1
        return self.link.run("publish", self.channel, text).addCallback(_none)

    def command(self, name):
        self.deliver(HubMessage(COMMAND, name))  # server commands stay on this node

    def received(self, text):
        try:
            message = json.loads(text)
            version = message.get("v")
            if version != HUB_FORMAT:
                if version not in self._bad_versions:
                    self._bad_versions.add(version)
                    self.log.warn("ignoring hub messages of format {v!r} (this node speaks "
                                  "{ours})", v=version, ours=HUB_FORMAT)
                return
            if message["node"] == self.node_id:
                return
            self.messages_in += 1
            self.deliver(HubMessage(PUSH, message["action"], message.get("data"),
                                    message.get("stream")),
                         session_id=message.get("session"), client_id=message.get("client"))
        except (ValueError, KeyError, TypeError, AttributeError):
            self.log.warn("ignoring a malformed hub message: {text!r}", text=text[:200])


def build(config, reactor):
    from hpxd.backends import Backend
    b = config.backend
    link = RedisLink(b.redis_url, b.redis_pool_size, b.redis_connect_timeout,
                     b.redis_reply_timeout, reactor, getattr(b, "redis_ca_file", ""))
    hub = RedisHub(link)
    link.subscriber_factory(hub)
    sessions = RedisSessionStore(link, config.sessions.lifespan_seconds,
                                 config.sessions.max_guest_sessions)
    return Backend(sessions, RedisScope(link),
                   hub, [link], ready=lambda: link.ready(b.redis_connect_timeout or 5),
                   is_ready=link.is_ready, leases=RedisLeases(link))

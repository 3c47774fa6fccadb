"""The door kit: what every door does with a connection, written once.

A door turns its wire format into calls of this module and of the
dispatcher, and their answers back into its wire format; nothing else.
Here, for every door alike:

- ``DoorKit``: one per door. Its open connections and their traffic for
  ``/metrics`` (connections, bytes in and out, clients dropped for not
  reading), and the log lines every door writes about a connection.
- ``Connection``: one client connection of any door, the hub's client
  (``IHubClient``). It finds the session a message is for (an id in the
  envelope, ``attach``, a cookie, or a new guest), binds it to the
  connection so pushes to the session reach it, runs the built-ins
  (``login``, ``logout``, ``attach``, ``session``, ``functions``,
  ``introduce_self`` and the server commands), and holds the read-only
  ``environ`` every call of the connection gets.
- ``repaired``: the value a door sends instead of one that is not JSON.

Sessions and connections: a session a connection made lives only while a
connection of this node uses it, plus ``connection_grace_seconds``, when
it is a guest session that holds no data (on every door), and whatever it
is on a door whose sessions end with their connection (the WebSocket door,
as in Igor). Anything else keeps its sliding lifespan. So anonymous
handshakes cost nothing lasting.
"""

import secrets
from types import MappingProxyType

from twisted.logger import Logger
from zope.interface import implementer

from hpxd.core import control, errors
from hpxd.core.deferreds import deferred
from hpxd.core.interfaces import IHubClient
from hpxd.core.jsonvalues import NOT_ENCODABLE, to_json
from hpxd.core.metrics import DoorTraffic

NOT_JSON = "the function returned a value that is not JSON"
# What a built-in answers when its door must send nothing at all (a
# successful introduce_self: Igor's server sends no reply, and an Igor
# client has no handler for that stream).
NO_ANSWER = object()
# The built-ins of doors that name them as actions (docs/websocket.md).
BUILT_INS = frozenset({"session", "login", "logout", "attach", "functions", "introduce_self",
                       control.QUIT, control.RESTART})

log = Logger("hpxd.core.doorkit")


def peer_text(address):
    """An ``IAddress`` as the log and ``environ["peer"]`` show it: host:port."""
    return f"{getattr(address, 'host', address)}:{getattr(address, 'port', '')}"


def session_info(session):
    """Who a session is, as the built-ins answer it."""
    return {"session": session.id, "user": session.user_name, "role": session.role}


def repaired(value, what):
    """``value`` if it is JSON, else the error a door sends in its place
    (100, the value logged): call only once encoding the reply failed."""
    try:
        to_json(value)
        return value, None
    except NOT_ENCODABLE:
        log.error("{what} returned a value that is not JSON: {value!r}", what=what, value=value)
        return None, errors.UnhandledError(NOT_JSON)


def new_client_id():
    return secrets.token_hex(16)


class DoorKit:
    """One door's connections, counted for ``/metrics`` (``Metrics.doors``).

    ``sessions_end_with_connection``: every session a connection of this
    door made (a guest, a login) ends ``connection_grace_seconds`` after
    its last connection closes; otherwise only guest sessions holding no
    data do.
    """

    def __init__(self, node, door, sessions_end_with_connection=False, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.node, self.door, self.clock = node, door, clock
        self.sessions_end_with_connection = sessions_end_with_connection
        self.connections = set()
        self.dropped_slow = 0  # clients dropped for not reading
        self.closed_bytes_in = self.closed_bytes_out = 0  # of connections gone
        node.dispatcher.metrics.doors[door] = self.traffic

    def connect(self, protocol, peer):
        """A new ``Connection`` for the door's ``protocol`` (which delivers
        hub messages: ``protocol.deliver(message)``), from ``peer`` (text)."""
        return Connection(self, protocol, peer)

    def traffic(self):
        """This door's counts, read at scrape time."""
        live = self.connections
        return DoorTraffic(len(live), self.closed_bytes_in + sum(c.bytes_in for c in live),
                           self.closed_bytes_out + sum(c.bytes_out for c in live),
                           self.dropped_slow)

    def protocols(self):
        return [connection.protocol for connection in self.connections]


@implementer(IHubClient)
class Connection:
    """One connection of any door: its session, names, environ and traffic."""

    def __init__(self, kit, protocol, peer):
        self.kit, self.node, self.protocol = kit, kit.node, protocol
        self.peer = peer
        # The hub's name for this connection; introduce_self renames it.
        # connection_id, the first one, holds an introduced name's lease.
        self.client_id = self.connection_id = new_client_id()
        self.session_id = None
        self.user = None  # the user name of the session in use, for the log
        self.made = set()  # ids of the sessions this connection made
        self.bytes_in = self.bytes_out = 0
        self.messages = 0
        self.opened_at = kit.clock.seconds()
        self.opened = self.closed = False
        self.environ = None
        self.set_environ()

    # -- life ----------------------------------------------------------------------

    def set_environ(self):
        """The read-only ``environ`` of every call of this connection (made
        once, and again when what it says changes)."""
        self.environ = MappingProxyType({"door": self.kit.door, "peer": self.peer,
                                         "client_id": self.client_id})

    def set_peer(self, peer):
        """The peer became known late (behind a PROXY header)."""
        if peer != self.peer:
            self.peer = peer
            self.set_environ()

    def open(self):
        self.opened = True
        self.kit.connections.add(self)
        self.node.hub.register(self)
        log.info("{door} connection opened from {peer}", door=self.kit.door, peer=self.peer)

    def close(self, how=""):
        """The connection is gone: forget it everywhere, let the sessions it
        made go after the grace, and say so in the log."""
        if self.closed or not self.opened:
            return
        self.closed = True
        kit, node = self.kit, self.node
        kit.connections.discard(self)
        kit.closed_bytes_in += self.bytes_in
        kit.closed_bytes_out += self.bytes_out
        node.hub.unregister(self)
        if node.client_names is not None:
            node.client_names.forget(self)
        self._release_sessions()
        log.info("{door} connection from {peer} closed{how} after {duration:.1f} s, {messages} "
                 "messages (user {user})", door=kit.door, peer=self.peer, how=how,
                 duration=kit.clock.seconds() - self.opened_at, messages=self.messages,
                 user="none" if self.session_id is None else
                 repr(self.user) if self.user else "guest")

    def _release_sessions(self):
        """Sessions this connection made outlive it by the grace, unless
        another client of this node uses them (a use meanwhile, anywhere,
        restores their lifespan)."""
        node = self.node
        in_use = {client.session_id for client in node.hub.clients()}
        only_empty_guests = not self.kit.sessions_end_with_connection
        for session_id in self.made - in_use:
            d = node.sessions.expire_in(session_id, node.connection_grace,
                                        only_empty_guest=only_empty_guests)
            d.addErrback(self._not_released, session_id)

    @staticmethod
    def _not_released(failure, session_id):
        failure.trap(errors.HpxdError)  # Redis away: the session keeps its lifespan
        log.info("a closed connection's session keeps its lifespan: {error}",
                 error=failure.value.msg)

    def too_slow(self, queued):
        """The client does not read: count it and say so; the door drops it."""
        self.kit.dropped_slow += 1
        log.warn("dropping {door} client {peer}: it does not read ({queued} bytes waiting)",
                 door=self.kit.door, peer=self.peer, queued=queued)

    def refused(self, error):
        """Log an error answered to this client (the door sends it)."""
        log.info("{door} error {code} for {peer}: {msg}", door=self.kit.door, code=error.code,
                 msg=error.msg, peer=self.peer)

    # -- IHubClient ----------------------------------------------------------------

    def deliver(self, message):
        self.protocol.deliver(message)

    # -- the session in use ----------------------------------------------------------

    def use(self, session):
        """This connection uses ``session`` from now on: pushes to it reach
        the connection, and a process finds it by the connection's name."""
        if session.id != self.session_id:
            self.session_id, self.user = session.id, session.user_name
            self._names_follow()
        return session

    def forget_session(self):
        if self.session_id is not None:
            self.session_id = self.user = None
            self._names_follow()

    def _names_follow(self):
        # A process finds an introduced client's session by its name.
        if self.node.client_names is not None:  # None: a bare Node (unit tests)
            self.node.client_names.session_changed(self, self.session_id)

    def session_now(self, session_id):
        """The live session ``session_id`` (sent in an envelope), now in use
        here; None when the store needs I/O (then ``session``). Raises
        SessionExpired. Every call of the TCP door comes through here."""
        session = self.node.sessions.get_now(session_id)
        if session is not None and session_id != self.session_id:
            self.use(session)
        return session

    def session(self, session_id):
        """``session_now`` that waits for the store: a Deferred."""
        return self.node.login.attach(session_id, self.peer).addCallback(self.use)

    @deferred
    async def current(self):
        """The connection's session, read again from the store (it may have
        expired, or ended on another door), or a new guest session."""
        if self.session_id is not None:
            return await self.attach(self.session_id)
        return await self.guest()

    # -- built-ins -----------------------------------------------------------------

    @deferred
    async def guest(self):
        return self._made(await self.node.login.guest(self.peer))

    @deferred
    async def login(self, user, password):
        return self._made(await self.node.login.login(user, password, self.peer))

    @deferred
    async def attach(self, session_id):
        return self.use(await self.node.login.attach(session_id, self.peer))

    def _made(self, session):
        self.made.add(session.id)
        return self.use(session)

    @deferred
    async def logout(self, session_id=None):
        """End this connection's session (or ``session_id``), everywhere."""
        session_id = session_id or self.session_id
        if not session_id:
            raise errors.AuthRequired("logout: this connection has no session")
        session = await self.node.login.attach(session_id, self.peer)
        self.made.discard(session.id)
        if session.id == self.session_id:
            self.forget_session()
        await self.node.login.logout(session, self.peer)

    @deferred
    async def introduce(self, client_id):
        """Go by ``client_id`` (unique in the cluster) so processes can push here."""
        await self.node.client_names.introduce(self, self.connection_id, client_id,
                                               self.session_id)
        self.set_environ()

    @deferred
    async def functions(self):
        """What this connection's session may call."""
        return self.node.dispatcher.functions(await self.current())

    def command(self, name, session):
        """Run the server command ``name`` (parsed: ``control.parse_command``)
        for ``session`` (None: no session)."""
        return self.node.control.run(session, name, self.peer)

    @deferred
    async def built_in(self, action, data):
        """Run the built-in ``action`` (one of ``BUILT_INS``) with the JSON
        ``data`` its door received; its answer (None: nothing but the end
        of the call; NO_ANSWER: nothing at all)."""
        if action == "session":  # who am I; a guest gets its session now
            return session_info(await self.current())
        if action == "login":
            user, password = fields(data, "user", "password")
            return session_info(await self.login(user, password))
        if action == "attach":
            (session_id,) = fields(data, "session")
            return session_info(await self.attach(session_id))
        if action == "functions":
            return await self.functions()
        if action == "introduce_self":
            (client_id,) = fields(data, "client_id", error=errors.BadArguments)
            await self.introduce(client_id)
            return NO_ANSWER
        if action == "logout":
            await self.logout()
            return None
        session = await self.current() if self.session_id else None
        self.command(action, session)
        return None


def fields(data, *names, error=errors.MissingCredentials):
    """The values of ``names`` in the JSON object ``data``; ``error`` if it is none."""
    if not isinstance(data, dict):
        raise error(f"data must be an object with {', '.join(names)}")
    return tuple(data.get(name) for name in names)

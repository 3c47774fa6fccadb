"""The WebSocket door at ``/ws``: the Igor action/stream protocol (docs/websocket.md).

Request ``{"streamId": id, "action": name, "data": <list | object | null>}``;
each value a function sends goes back at once as ``{"streamId", "data"}``,
the return value as the last one (none when it is None), then
``{"streamId", "close": true}``; a failure as ``{"streamId", "error", "code"}``
then the close. Calls on one connection run concurrently. Built-in actions:
``session``, ``login``, ``logout``, ``attach``, ``functions``,
``introduce_self``, ``serverquit``, ``serverrestart``.

A thin adapter: calls, logins and errors all go through the core.
"""

import json
import secrets
from types import MappingProxyType

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from hpxd.core import control, errors
from hpxd.core.app import arguments
from hpxd.core.hub import COMMAND
from hpxd.core.interfaces import IHubClient
from hpxd.core.jsonvalues import load_json
from hpxd.core.metrics import DoorTraffic
from hpxd.doors import Backpressure, fire, waiter

COOKIE = b"hpxd_session"
MAX_STREAMS = 256  # calls running at once on one connection
SERVER_STREAM = "server"  # the streamId of server commands
BUILT_IN = ("session", "login", "logout", "attach", "functions", "introduce_self",
            control.QUIT, control.RESTART)
GOING_AWAY, UNACCEPTABLE = 1001, 1003  # WebSocket close codes (RFC 6455)
log = Logger("hpxd.doors.web.websocket")


def set_websocket_options(factory, config):
    """Every autobahn option that matters, from ``[web]``, in one place.

    autobahn's defaults suit a client, not a server: unlimited message and
    frame sizes, every Origin allowed, an oversize message dropped (1006)
    instead of closed with 1009.
    """
    limit = config.max_body_bytes

    def accept_deflate(offers):
        for offer in offers:
            if isinstance(offer, PerMessageDeflateOffer):
                # The inflated size is capped too: no decompression bombs.
                return PerMessageDeflateOfferAccept(offer, max_message_size=limit)
        return None

    factory.setProtocolOptions(
        maxMessagePayloadSize=limit, maxFramePayloadSize=limit, failByDrop=False,
        autoPingInterval=config.ws_ping_interval, autoPingTimeout=config.ws_ping_timeout,
        openHandshakeTimeout=config.ws_handshake_timeout,
        closeHandshakeTimeout=config.ws_handshake_timeout,
        perMessageCompressionAccept=accept_deflate,
        allowedOrigins=config.allowed_origins, allowNullOrigin=False)


@implementer(IHubClient)
class HpxWebSocket(WebSocketServerProtocol):
    # Not ``log``: autobahn's protocol logs its own (debug) lines through that.

    def __init__(self):
        super().__init__()
        self.session = None
        self.session_id = None
        self.client_id = None
        self.connection_id = None  # the first, random client id: holds a chosen one
        self.bound = set()  # ids of the sessions this connection made (guest, login)
        self.bytes_in = self.bytes_out = 0  # message payloads, for /metrics
        self.streams = set()  # streamIds of calls running on this connection
        self.backpressure = None
        self.peer_text = "?"
        self._gone = False

    # -- connection life ----------------------------------------------------

    def onConnect(self, request):
        peer = self.transport.getPeer()
        self.peer_text = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"
        self.client_id = self.connection_id = self.factory.new_client_id()
        self._set_environ()
        cookie = _cookie(request.headers.get("cookie", ""))
        if cookie:  # a browser that logged in over HTTP
            return self.factory.node.login.attach(cookie, self.peer_text).addCallbacks(
                self._attached, lambda failure: None)
        return None

    def _set_environ(self):
        # Built once per connection (and again on introduce_self): read-only.
        self.environ = MappingProxyType({"door": "ws", "peer": self.peer_text,
                                         "client_id": self.client_id})

    def _attached(self, session):
        self._use(session)
        return None

    def onOpen(self):
        factory = self.factory
        factory.connections.add(self)
        factory.node.hub.register(self)
        self.backpressure = Backpressure(self.too_slow, factory.config.max_queued_bytes)
        # The HTTP channel that carried the upgrade still holds the
        # transport as its producer: take it over.
        self.transport.unregisterProducer()
        self.transport.registerProducer(self.backpressure, True)
        log.info("ws connection opened from {peer}", peer=self.peer_text)

    def onClose(self, wasClean, code, reason):
        self._gone = True
        factory = self.factory
        if self in factory.connections:
            factory.connection_lost(self)
            factory.node.hub.unregister(self)
            factory.node.client_names.forget(self)
            self._unbind(factory.node)
            log.info("ws connection from {peer} closed ({code})", peer=self.peer_text,
                     code=code)
        factory.check_idle()

    def _unbind(self, node):
        """Sessions this connection made live ``connection_grace_seconds``
        after it closes, unless another client of this node uses them (or
        someone uses them meanwhile: that restores their lifespan)."""
        in_use = {client.session_id for client in node.hub.clients()}
        for session_id in self.bound - in_use:
            node.sessions.expire_in(session_id, node.connection_grace).addErrback(
                lambda f: f.trap(errors.HpxdError))

    def close_with(self, code, reason):
        # sendClose() takes only 1000 and 3000-4999 from applications; the
        # protocol's own codes (1001 going away, 1003) go as a close frame.
        # A close reason is at most 123 bytes: cut whole characters only.
        reason_utf8 = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
        self.sendCloseFrame(code=code, reasonUtf8=reason_utf8, isReply=False)

    def too_slow(self, queued):
        self.factory.dropped_slow += 1
        log.warn("dropping ws client {peer}: it does not read ({queued} bytes waiting)",
                 peer=self.peer_text, queued=queued)
        self.dropConnection(abort=True)

    # -- messages in ----------------------------------------------------------

    def onMessage(self, payload, isBinary):
        self.bytes_in += len(payload)
        if isBinary:  # 1003: a data type this endpoint does not accept
            self.close_with(UNACCEPTABLE, "hpxd's /ws speaks JSON text frames")
            return
        try:
            # A text frame is UTF-8 (autobahn checks it as it arrives).
            message = load_json(payload.decode("utf-8"))
        except ValueError as e:  # UnicodeDecodeError is one
            return self._error(None, errors.JSONParseError(f"invalid JSON ({e})"))
        if not isinstance(message, dict):
            return self._error(None, errors.InvalidMessage(
                'a message must be a JSON object {"streamId", "action", "data"}'))
        stream, action = message.get("streamId"), message.get("action")
        if type(stream) not in (str, int) or isinstance(stream, bool):
            return self._error(None, errors.InvalidMessage(
                '"streamId" must be a string or an integer'))
        if not isinstance(action, str) or not action:
            return self._error(stream, errors.InvalidMessage('"action" must be a non-empty string'))
        if stream in self.streams:
            return self._error(stream, errors.InvalidMessage(
                f"stream {stream!r} is already running on this connection"))
        if len(self.streams) >= MAX_STREAMS:
            return self._error(stream, errors.InvalidMessage(
                f"more than {MAX_STREAMS} calls at once on one connection"))
        data = message.get("data")
        if action not in BUILT_IN and self._answer_now(stream, action, data):
            return
        self.streams.add(stream)
        d = defer.ensureDeferred(self._run(stream, action, data))
        d.addBoth(self._ended, stream)

    def _answer_now(self, stream, fname, data):
        """Most calls: the session read without I/O (memory backend) and a
        function that answers at once, without a coroutine or a Deferred
        (the TCP door's path too). False: take the general path, which
        also answers every case this one leaves (no session yet, Redis)."""
        if self.session_id is None:
            return False
        node = self.factory.node
        try:
            session = node.sessions.get_now(self.session_id)
        except errors.HpxdError:
            return False  # the general path answers it (and logs it)
        if session is None:
            return False
        self.session = session
        try:
            args, kwargs = arguments(data)
            result = node.dispatcher.call_now(session, fname, args, kwargs, self.environ,
                                              lambda name, value: self._send(
                                                  {"streamId": stream, "data": value}))
        except errors.HpxdError as e:
            self._error(stream, e)
            self._send({"streamId": stream, "close": True})
            return True
        if isinstance(result, defer.Deferred):  # it answers later: as the general path
            self.streams.add(stream)
            result.addCallbacks(self._answered, self._failed, (stream,), None, (stream,))
            result.addBoth(self._ended, stream)
            return True
        if result is not None:
            self._send({"streamId": stream, "data": result})
        self._send({"streamId": stream, "close": True})
        return True

    def _answered(self, result, stream):
        if result is not None:
            self._send({"streamId": stream, "data": result})

    def _failed(self, failure, stream):
        failure.trap(errors.HpxdError)
        self._error(stream, failure.value)

    async def _run(self, stream, action, data):
        try:
            if action in BUILT_IN:
                result = await self._built_in(action, data)
            else:
                result = await self._call(stream, action, data)
            if result is not None:
                self._send({"streamId": stream, "data": result})
        except errors.HpxdError as e:
            # The core logged a refused login already, on one line.
            self._error(stream, e, quiet=action == "login")

    def _ended(self, failure, stream):
        self.streams.discard(stream)
        if failure is not None:  # _run answers every HpxdError: this is our bug
            log.failure("ws door failed on stream {stream!r}", failure, stream=stream)
            self._error(stream, errors.UnhandledError())
        self._send({"streamId": stream, "close": True})
        self.factory.check_idle()

    async def _call(self, stream, fname, data):
        session = await self._session()
        args, kwargs = arguments(data)
        return await self.factory.node.dispatcher.call(
            session, fname, args, kwargs, self.environ,
            lambda name, value: self._send({"streamId": stream, "data": value}))

    async def _session(self):
        """The connection's session: re-read from the store on every call
        (it may have expired, or been ended on another door), or a new guest."""
        login = self.factory.node.login
        if self.session_id is not None:
            return self._use(await login.attach(self.session_id, self.peer_text))
        return self._bind(await login.guest(self.peer_text))

    def _bind(self, session):
        self.bound.add(session.id)
        return self._use(session)

    def _use(self, session):
        if session.id != self.session_id:
            self.factory.node.client_names.session_changed(self, session.id)
        self.session, self.session_id = session, session.id
        return session

    async def _built_in(self, action, data):
        login = self.factory.node.login
        if action == "session":  # who am I; a guest gets its session now
            session = await self._session()
            return {"session": session.id, "user": session.user_name, "role": session.role}
        if action == "login":
            user, password = _fields(data, "user", "password")
            session = self._bind(await login.login(user, password, self.peer_text))
            return {"session": session.id, "user": session.user_name, "role": session.role}
        if action == "attach":
            (session_id,) = _fields(data, "session")
            session = self._use(await login.attach(session_id, self.peer_text))
            return {"session": session.id, "user": session.user_name, "role": session.role}
        if action == "functions":  # what this session may call (the console lists them)
            return self.factory.node.dispatcher.functions(await self._session())
        if action == "introduce_self":  # a name processes can push to
            (client_id,) = _fields(data, "client_id", error=errors.BadArguments)
            await self.factory.node.client_names.introduce(self, self.connection_id,
                                                           client_id, self.session_id)
            self._set_environ()
            return None
        if action == "logout":
            if self.session_id is None:
                raise errors.AuthRequired("logout: this connection has no session")
            session = await login.attach(self.session_id, self.peer_text)
            self.session = self.session_id = None
            self.bound.discard(session.id)
            self.factory.node.client_names.session_changed(self, None)
            await login.logout(session, self.peer_text)
            return None
        session = await self._session() if self.session_id else None
        self.factory.node.control.run(session, action, self.peer_text)
        return None

    # -- messages out -----------------------------------------------------------

    def _send(self, message):
        # After a close frame (either side's) autobahn refuses to send: an
        # answer that comes later has nobody to go to.
        if self._gone or self.state != self.STATE_OPEN:
            return
        try:
            payload = json.dumps(message).encode("utf-8")
        except (TypeError, ValueError):
            log.error("a value for ws stream {stream!r} is not JSON",
                           stream=message.get("streamId"))
            error = errors.UnhandledError("the function returned a value that is not JSON")
            payload = json.dumps({"streamId": message.get("streamId"), "error": error.msg,
                                  "code": error.code}).encode("utf-8")
        if len(payload) > self.factory.config.max_body_bytes:
            error = errors.UnhandledError("the answer is larger than max_body_bytes")
            payload = json.dumps({"streamId": message.get("streamId"), "error": error.msg,
                                  "code": error.code}).encode("utf-8")
        self.sendMessage(payload, isBinary=False)
        self.bytes_out += len(payload)
        if self.backpressure.paused:
            self.backpressure.wrote(len(payload))

    def _error(self, stream, error, quiet=False):
        if not quiet:
            log.info("ws error {code} for {peer}: {msg}", code=error.code, msg=error.msg,
                          peer=self.peer_text)
        message = {"error": error.msg, "code": error.code}
        if stream is not None:
            message = {"streamId": stream, **message}
        self._send(message)

    # -- hub client ----------------------------------------------------------------

    def deliver(self, message):
        if message.kind == COMMAND:
            self._send({"streamId": SERVER_STREAM, "action": message.action, "data": None})
        else:
            self._send({"streamId": message.stream, "action": message.action,
                        "data": message.data})


class HpxWebSocketFactory(WebSocketServerFactory):
    protocol = HpxWebSocket

    def __init__(self, node, config, reactor):
        super().__init__(reactor=reactor)
        self.node, self.config = node, config
        self.connections = set()
        self._idle = []
        self._closed = []
        self.dropped_slow = 0  # clients dropped for not reading
        self.closed_bytes_in = self.closed_bytes_out = 0  # of connections gone
        set_websocket_options(self, config)
        node.dispatcher.metrics.doors["ws"] = self.traffic

    def traffic(self):
        """This door's counts for /metrics (hpxd.core.metrics), at scrape time."""
        return DoorTraffic(len(self.connections),
                           self.closed_bytes_in + sum(c.bytes_in for c in self.connections),
                           self.closed_bytes_out + sum(c.bytes_out for c in self.connections),
                           self.dropped_slow)

    def connection_lost(self, connection):
        self.connections.discard(connection)
        self.closed_bytes_in += connection.bytes_in
        self.closed_bytes_out += connection.bytes_out

    @staticmethod
    def new_client_id():
        return secrets.token_hex(16)

    def check_idle(self):
        if self._idle and not any(c.streams for c in self.connections):
            fire(self._idle)
        if self._closed and not self.connections:
            fire(self._closed)

    def drain(self):
        d = waiter(self._idle)
        self.check_idle()
        return d

    def close_all(self, reason=None):
        """Close every connection with 1001 (going away); cancelling the
        Deferred drops those that did not finish the closing handshake."""
        if not self.connections:
            return defer.succeed(None)
        d = waiter(self._closed, on_cancel=self._drop_all)
        for connection in list(self.connections):
            connection.close_with(GOING_AWAY, f"hpxd: {reason or 'shutting down'}")
        return d

    def _drop_all(self):
        for connection in list(self.connections):
            connection.dropConnection(abort=True)


def _fields(data, *names, error=errors.MissingCredentials):
    if not isinstance(data, dict):
        raise error(f"data must be an object with {', '.join(names)}")
    return tuple(data.get(name) for name in names)


def _cookie(header):
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE.decode():
            return value
    return None


class UpgradingResource(WebSocketResource):
    """A WebSocket resource of the web door: it hands each upgraded
    connection over from the site, and closes its connections on a quit
    (``factory.close_all``)."""

    def render(self, request):
        site = request.channel.site
        result = super().render(request)
        site.upgraded(request)  # the connection is the WebSocket's now
        return result

    def close_connections(self, reason=None):
        return self.factory.close_all(reason)


class WebSocket(UpgradingResource):
    """``/ws``, as the web door mounts it (``hpxd.doors.WEB_RESOURCES``)."""

    def __init__(self, node, config, reactor):
        self.factory = HpxWebSocketFactory(node, config, reactor)
        super().__init__(self.factory)

    def drain(self):
        return self.factory.drain()


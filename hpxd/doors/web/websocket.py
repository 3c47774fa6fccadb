"""The WebSocket door at ``/ws`` (and ``/`` for an upgrade): the Igor
action/stream protocol (docs/websocket.md).

Request ``{"streamId": id, "action": name, "data": <any JSON>}`` (a list is
positional arguments, an object keyword ones, null none, any other value
the one positional argument); each value a function sends goes back at
once as ``{"streamId", "data"}``, the return value as the last one (none
when it is None), then ``{"streamId", "close": true}``; a failure as
``{"streamId", "error", "code"}`` then the close. Calls on one connection
run concurrently. The built-in actions (``hpxd.core.doorkit.BUILT_INS``)
run in the core; a successful ``introduce_self`` answers nothing at all,
as Igor's server does.

A thin adapter: sessions, built-ins, calls and errors all go through the core.
"""

import json

from autobahn.exception import Disconnected
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from hpxd.core import errors
from hpxd.core.app import arguments
from hpxd.core.doorkit import BUILT_INS, NO_ANSWER, DoorKit, peer_text, repaired
from hpxd.core.hub import COMMAND
from hpxd.core.jsonvalues import NOT_ENCODABLE, load_json, to_json
from hpxd.doors import Backpressure, fire, waiter
from hpxd.doors.web import json_error
from hpxd.doors.web.autobahn_adapter import ServerProtocol, send_close, take_over_producer
from hpxd.doors.web.cookies import session_id_in
from hpxd.doors.web.origin import OriginCheck

MAX_STREAMS = 256  # calls running at once on one connection
SERVER_STREAM = "server"  # the streamId of server commands
GOING_AWAY, UNACCEPTABLE = 1001, 1003  # WebSocket close codes (RFC 6455)
log = Logger("hpxd.doors.web.websocket")


def set_websocket_options(factory, config):
    """Every autobahn option that matters, from ``[web]``, in one place.

    autobahn's defaults suit a client, not a server: unlimited message and
    frame sizes, every Origin allowed, an oversize message dropped (1006)
    instead of closed with 1009. The Origin is checked before autobahn sees
    the upgrade, by the web door's one Origin check (``UpgradingResource``).
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
        allowedOrigins=["*"], allowNullOrigin=True)  # see UpgradingResource.render


class HpxWebSocket(ServerProtocol):
    """One /ws connection: Igor messages in, stream messages out. Its
    ``conn`` (the door kit's ``Connection``) holds its session, names,
    environ and traffic counts and is the hub's client."""

    # Not ``log``: autobahn's protocol logs its own (debug) lines through that.

    def __init__(self):
        super().__init__()
        self.conn = None
        self.streams = set()  # streamIds of calls running on this connection
        self.backpressure = None

    # -- connection life ----------------------------------------------------

    def onConnect(self, request):
        self.conn = self.factory.kit.connect(self, peer_text(self.transport.getPeer()))
        cookie = session_id_in(request.headers.get("cookie", ""))
        if cookie:  # a browser that logged in over HTTP
            return self.conn.attach(cookie).addCallbacks(lambda _: None, self._not_attached)
        return None

    @staticmethod
    def _not_attached(failure):
        """An unknown or expired cookie: the client goes on as a guest. Any
        other failure (Redis away) refuses the upgrade: a logged-in browser
        never silently becomes a guest."""
        if failure.check(errors.SessionExpired):
            return None
        failure.trap(errors.HpxdError)
        log.info("ws upgrade refused: its session cookie could not be read ({error})",
                 error=failure.value.msg)
        raise ConnectionDeny(failure.value.http_status,
                             f"{failure.value.msg}: the session could not be read")

    def onOpen(self):
        self.conn.open()
        self.backpressure = Backpressure(self.too_slow, self.factory.config.max_queued_bytes)
        take_over_producer(self, self.backpressure)

    def onClose(self, wasClean, code, reason):
        if self.conn is not None:
            self.conn.close(f" ({code})")
        self.factory.check_idle()

    def close_with(self, code, reason):
        send_close(self, code, reason)

    def too_slow(self, queued):
        self.conn.too_slow(queued)
        self.dropConnection(abort=True)

    # -- messages in ----------------------------------------------------------

    def onMessage(self, payload, isBinary):
        self.conn.bytes_in += len(payload)
        self.conn.messages += 1
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
        if action not in BUILT_INS and self._answer_now(stream, action, data):
            return
        self.streams.add(stream)
        d = defer.ensureDeferred(self._run(stream, action, data))
        d.addBoth(self._ended, stream)

    def _answer_now(self, stream, fname, data):
        """Most calls: the session read without I/O (memory backend) and a
        function that answers at once, without a coroutine or a Deferred
        (the TCP door's path too). False: take the general path, which
        also answers every case this one leaves (no session yet, Redis)."""
        conn = self.conn
        if conn.session_id is None:
            return False
        try:
            session = conn.session_now(conn.session_id)
        except errors.HpxdError:
            return False  # the general path answers it (and logs it)
        if session is None:
            return False
        try:
            args, kwargs = arguments(data)
            result = self.factory.node.dispatcher.call_now(
                session, fname, args, kwargs, conn.environ,
                lambda name, value: self._send({"streamId": stream, "data": value}))
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
            if action in BUILT_INS:
                result = await self.conn.built_in(action, data)
                if result is NO_ANSWER:
                    return NO_ANSWER
            else:
                result = await self._call(stream, action, data)
            if result is not None:
                self._send({"streamId": stream, "data": result})
        except errors.HpxdError as e:
            # The core logged a refused login already, on one line.
            self._error(stream, e, quiet=action == "login")
        return None

    def _ended(self, result, stream):
        self.streams.discard(stream)
        if isinstance(result, Failure):  # _run answers every HpxdError: this is our bug
            log.failure("ws door failed on stream {stream!r}", result, stream=stream)
            self._error(stream, errors.UnhandledError())
        if result is not NO_ANSWER:
            self._send({"streamId": stream, "close": True})
        self.factory.check_idle()

    async def _call(self, stream, fname, data):
        session = await self.conn.current()
        args, kwargs = arguments(data)
        return await self.factory.node.dispatcher.call(
            session, fname, args, kwargs, self.conn.environ,
            lambda name, value: self._send({"streamId": stream, "data": value}))

    # -- messages out -----------------------------------------------------------

    def _send(self, message):
        try:
            payload = to_json(message).encode("utf-8")
        except NOT_ENCODABLE:
            _, error = repaired(message.get("data"), f"ws stream {message.get('streamId')!r}")
            payload = self._error_payload(message.get("streamId"), error)
        if len(payload) > self.factory.config.max_body_bytes:
            payload = self._error_payload(message.get("streamId"), errors.UnhandledError(
                "the answer is larger than max_body_bytes"))
        try:
            self.sendMessage(payload, isBinary=False)
        except Disconnected:
            # A close frame went out (either side's): an answer that comes
            # later has nobody to go to.
            return
        self.conn.bytes_out += len(payload)
        if self.backpressure.paused:
            self.backpressure.wrote(len(payload))

    @staticmethod
    def _error_payload(stream, error):
        return json.dumps({"streamId": stream, "error": error.msg,
                           "code": error.code}).encode("utf-8")

    def _error(self, stream, error, quiet=False):
        if not quiet:
            self.conn.refused(error)
        message = {"error": error.msg, "code": error.code}
        if stream is not None:
            message = {"streamId": stream, **message}
        self._send(message)

    # -- hub messages (``conn`` forwards them here) ----------------------------------

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
        # Igor's sessions live as long as their connection (plus the grace).
        self.kit = DoorKit(node, "ws", sessions_end_with_connection=True, clock=reactor)
        self._idle = []
        self._closed = []
        set_websocket_options(self, config)

    @property
    def connections(self):
        """The protocols of the open connections."""
        return self.kit.protocols()

    def check_idle(self):
        if self._idle and not any(c.streams for c in self.connections):
            fire(self._idle)
        if self._closed and not self.kit.connections:
            fire(self._closed)

    def drain(self):
        d = waiter(self._idle)
        self.check_idle()
        return d

    def close_all(self, reason=None):
        """Close every connection with 1001 (going away); cancelling the
        Deferred drops those that did not finish the closing handshake."""
        if not self.kit.connections:
            return defer.succeed(None)
        d = waiter(self._closed, on_cancel=self._drop_all)
        for connection in self.connections:
            connection.close_with(GOING_AWAY, f"hpxd: {reason or 'shutting down'}")
        return d

    def _drop_all(self):
        for connection in self.connections:
            connection.dropConnection(abort=True)


class UpgradingResource(WebSocketResource):
    """A WebSocket resource of the web door: it checks the upgrade's Origin
    (the web door's one check), hands each upgraded connection over from
    the site, and closes its connections on a quit (``factory.close_all``)."""

    def __init__(self, factory, allowed_origins):
        super().__init__(factory)
        self.origins = OriginCheck(allowed_origins)

    def render(self, request):
        refused = self.origins.refusal(request)
        if refused is not None:
            log.info("ws upgrade from {host} refused: {why}", why=refused.msg,
                     host=getattr(request.getClientAddress(), "host", "?"))
            return json_error(request, refused)
        site = request.channel.site
        result = super().render(request)
        site.upgraded(request)  # the connection is the WebSocket's now
        return result

    def close_connections(self, reason=None):
        return self.factory.close_all(reason)


class WebSocket(UpgradingResource):
    """``/ws``, as the web door mounts it (``hpxd.doors.WEB_RESOURCES``)."""

    def __init__(self, node, config, reactor):
        self.factory = HpxWebSocketFactory(node, config.web, reactor)
        super().__init__(self.factory, config.web.allowed_origins)

    def drain(self):
        return self.factory.drain()


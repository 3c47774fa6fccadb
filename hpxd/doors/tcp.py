"""The TCP door: HappyPanda X RPC, gzip JSON messages ended by ``<EOF>``.

Wire format: docs/tcp.md. Three objects, three jobs: ``HpxProtocol`` turns
bytes into messages and replies, ``HpxFactory`` holds what connections share,
``TcpDoor`` is the service that listens and, on shutdown, closes.
"""

import json
import secrets
import struct
import zlib
from collections import deque
from types import CoroutineType, MappingProxyType

from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

import hpxd
from hpxd.core import control, errors
from hpxd.core.dispatch import Later
from hpxd.core.hub import COMMAND
from hpxd.core.interfaces import IHubClient

EOF_MARK = b"<EOF>"
ENVELOPE_KEYS = frozenset({"session", "name", "data"})
MAX_QUEUED = 16  # messages read ahead of processing before we stop reading
NO_REPLY = object()  # the message's answer went out another way (a broadcast)


MAX_DEFLATE_RATIO = 1032  # deflate cannot expand data more than this
GZIP_TRAILER = struct.Struct("<II")  # CRC-32 and size of the member's data


def inflate(frame, limit):
    """Gunzip ``frame``, refusing (410) as soon as output would pass ``limit``.

    Never inflates more than ``limit + 1`` bytes, so a gzip bomb costs no
    more memory than an honest message of the largest allowed size.
    """
    if len(frame) * MAX_DEFLATE_RATIO <= limit:
        # Too small to inflate past the limit whatever it holds: one call.
        # The trailer's size and CRC must match what came out, or the frame
        # holds more than one member (or junk), which the loop below handles.
        try:
            out = zlib.decompress(frame, 16 + zlib.MAX_WBITS)
        except zlib.error:
            out = None
        if out is not None and frame[-8:] == GZIP_TRAILER.pack(zlib.crc32(out),
                                                              len(out) & 0xFFFFFFFF):
            return out
    if not frame:
        raise errors.ParsingError("empty message: expected gzip data before <EOF>")
    out = bytearray()
    data = frame
    while data:  # a gzip file may hold several members
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, limit - len(out) + 1)
        except zlib.error as e:
            raise errors.ParsingError(f"bad gzip data ({e})") from None
        if len(out) > limit:
            raise errors.ParsingError(f"message inflates to more than {limit} bytes")
        if not inflater.eof:
            raise errors.ParsingError("truncated gzip data")
        data = inflater.unused_data
    return bytes(out)


def decode(frame, limit):
    """Frame bytes -> the envelope dict, or an HpxdError."""
    text = inflate(frame, limit)
    try:
        message = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise errors.ParsingError("message is not UTF-8") from None
    except ValueError as e:
        raise errors.JSONParseError(f"invalid JSON ({e})") from None
    return check_envelope(message)


def check_envelope(message):
    if type(message) is dict and message.keys() == ENVELOPE_KEYS \
            and type(message["session"]) is str and type(message["name"]) is str:
        return message  # the usual, complete envelope
    if not isinstance(message, dict):
        raise errors.InvalidMessage('a message must be a JSON object {"session", "name", "data"}')
    if not message.keys() <= ENVELOPE_KEYS:
        unknown = set(message) - ENVELOPE_KEYS
        raise errors.InvalidMessage(f"unknown envelope keys {sorted(unknown)}: "
                                    'only "session", "name" and "data" are allowed')
    if "data" not in message:
        raise errors.InvalidMessage('the envelope has no "data" key')
    for key in ("session", "name"):
        if not isinstance(message.get(key, ""), str):
            raise errors.InvalidMessage(f'"{key}" must be a string')
    return message


class Paused:
    """A call list stopped at ``index``, whose call ``fname`` must wait
    (``later``)."""

    __slots__ = ("results", "index", "fname", "later")

    def __init__(self, results, index, fname, later):
        self.results, self.index, self.fname, self.later = results, index, fname, later


def bad_call(fname):
    """The reply entry for a call that is not an object with a string "fname"."""
    error = errors.InvalidMessage('each call must be an object with a string "fname"')
    return {"fname": fname, "data": None, "error": error.as_dict()}


def encode(message):
    return zlib_gzip(json.dumps(message).encode("utf-8")) + EOF_MARK


def zlib_gzip(raw):
    """gzip at level 5 (as the public client), zlib's state sized to the message.

    With the defaults (32 KiB window, memLevel 8) zlib allocates and clears
    about 256 KiB of state per message: tens of microseconds for a 70-byte
    reply, and the rest of the server's working set pushed out of the CPU
    cache. A window no larger than the message and a hash table and symbol
    buffer to match (memLevel) compress small messages the same; any gzip
    reader inflates the result.
    """
    bits = len(raw).bit_length()
    window_bits = max(9, min(15, bits))
    mem_level = max(1, min(8, bits - 6))  # hash table 2**(mem_level + 7) entries
    compressor = zlib.compressobj(5, zlib.DEFLATED, 16 + window_bits, mem_level)
    return compressor.compress(raw) + compressor.flush()


@implementer(IHubClient)
class HpxProtocol(Protocol):
    log = Logger()

    def __init__(self):
        self.client_id = secrets.token_hex(16)
        self.session_id = None
        self._buffer = bytearray()
        self._scan_from = 0
        self._queue = deque()
        self._hung_up = False  # after a timeout: write nothing more
        self._busy = False
        self._paused = False
        self._closing = False
        self._pumping = False
        self._handshake_timer = None
        self._idle_timer = None
        self._last_activity = 0.0
        self._held_pushes = []

    # -- connection life -------------------------------------------------

    _peer = None

    @property
    def peer(self):
        # Behind haproxy: the real address is known only once the PROXY
        # header has been read, after connectionMade; it is settled by the
        # time our first data arrives, so it is kept from then on.
        if self._peer is not None:
            return self._peer
        peer = self.transport.getPeer()
        text = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"
        if self._data_seen:
            self._peer = text
        return text

    _data_seen = False  # set by the first dataReceived

    def connectionMade(self):
        factory = self.factory
        factory.connections.add(self)
        factory.node.hub.register(self)
        self._touch()
        if factory.config.idle_timeout:
            self._idle_timer = factory.clock.callLater(factory.config.idle_timeout,
                                                       self._idle_check)
        if factory.config.handshake_timeout:
            self._handshake_timer = factory.clock.callLater(
                factory.config.handshake_timeout, self._handshake_timed_out)
        self._write(self._greeting())

    def connectionLost(self, reason):
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.cancel()
        self._idle_timer = None
        self._cancel_handshake_timer()
        self.factory.node.hub.unregister(self)
        self.factory.connection_lost(self)

    def _touch(self):
        # Cheaper than moving a timer on every message: the idle timer reads
        # this when it fires and sleeps again for the time still left.
        self._last_activity = self.factory.clock.seconds()

    def _idle_check(self):
        timeout = self.factory.config.idle_timeout
        left = timeout - (self.factory.clock.seconds() - self._last_activity)
        if self._busy or left > 0:  # a long call is not idleness
            self._idle_timer = self.factory.clock.callLater(left if left > 0 else timeout,
                                                            self._idle_check)
            return
        self._idle_timer = None
        self.log.info("closing idle TCP connection from {peer}", peer=self.peer)
        self.transport.loseConnection()

    def _handshake_timed_out(self):
        self._handshake_timer = None
        self.log.info("TCP handshake timed out for {peer}", peer=self.peer)
        self._write(self._root_error(errors.AuthRequired("handshake timed out"), ""))
        self._hung_up = True  # a login still being checked gets no reply
        self._closing = True
        self._queue.clear()
        self.transport.loseConnection()

    def _cancel_handshake_timer(self):
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None

    def close_when_idle(self):
        """Finish the message in hand, then close (server shutdown)."""
        self._closing = True
        self._queue.clear()
        if not self._busy:
            self.transport.loseConnection()

    # -- framing ---------------------------------------------------------

    def dataReceived(self, data):
        if self._closing or self._closing_after_queue:
            return  # hanging up: nothing after an oversized message is read
        self._last_activity = self.factory.clock.seconds()  # see _touch
        self._data_seen = True
        limit = self.factory.config.max_message_bytes
        if not self._buffer and data.endswith(EOF_MARK):
            # The common case: the read holds whole messages and nothing more.
            for frame in data[:-len(EOF_MARK)].split(EOF_MARK):
                self._queue.append(frame if len(frame) <= limit else
                                   errors.ParsingError(f"message larger than {limit} bytes"))
        else:
            self._frame(data, limit)
        if len(self._queue) > MAX_QUEUED and not self._paused:
            self._paused = True
            self.transport.pauseProducing()
        self._pump()

    def _frame(self, data, limit):
        """Queue each whole message of the buffer; keep the partial rest."""
        self._buffer += data
        while True:
            end = self._buffer.find(EOF_MARK, self._scan_from)
            if end < 0:
                break
            if end > limit:  # the compressed size is capped too
                self._queue.append(errors.ParsingError(f"message larger than {limit} bytes"))
            else:
                self._queue.append(bytes(self._buffer[:end]))
            del self._buffer[:end + len(EOF_MARK)]
            self._scan_from = 0
        if len(self._buffer) > limit:
            # No <EOF> within the limit: we cannot find the next message
            # boundary safely, so answer once and hang up.
            self._queue.append(errors.ParsingError(f"message larger than {limit} bytes"))
            self._buffer.clear()
            self._closing_after_queue = True
        self._scan_from = max(0, len(self._buffer) - len(EOF_MARK) + 1)

    _closing_after_queue = False

    def _pump(self):
        # A loop, not recursion: most answers are ready at once, and _step
        # re-entering _pump for each of hundreds of messages from one read
        # would exhaust the stack (RecursionError).
        if self._pumping:
            return  # _step ran inside the loop below, which carries on
        self._pumping = True
        try:
            while not (self._busy or self._closing):
                if not self._queue:
                    if self._paused:
                        self._paused = False
                        self.transport.resumeProducing()
                    if self._closing_after_queue:
                        self.transport.loseConnection()
                    return
                self._busy = True
                try:
                    reply = self._answer_now(self._queue.popleft())
                except Exception:
                    self._crashed(Failure())
                    reply = NO_REPLY
                if type(reply) is CoroutineType:
                    self._step(reply)  # it must wait for something
                else:
                    self._answered(reply)
        finally:
            self._pumping = False

    def _step(self, coro, result=None):
        """Drive ``_answer``: on the spot until it waits, then from the
        callback of what it waits on, the way Twisted's own coroutine driver
        resumes (a result is sent in, a failure is thrown in), but without
        the Deferred and callbacks ensureDeferred adds to every message."""
        try:
            if isinstance(result, Failure):
                waiting = result.throwExceptionIntoGenerator(coro)
            else:
                waiting = coro.send(result)
        except StopIteration as done:
            self._answered(done.value)
        except BaseException:
            self._crashed(Failure())
            self._answered(NO_REPLY)
        else:
            if not isinstance(waiting, defer.Deferred):  # a bare yield: go on at once
                waiting = defer.succeed(None)
            waiting.addBoth(self._resume, coro)

    def _answered(self, reply):
        """Send the message's reply; the next message may start."""
        if reply is not NO_REPLY:
            self._write(reply)
        self._busy = False
        if self._held_pushes:
            held, self._held_pushes = self._held_pushes, []
            for message in held:
                self._write(message)
        if self._closing:
            self.transport.loseConnection()
        elif not self._pumping:  # answered later, from a callback
            self._pump()

    def _resume(self, result, coro):
        self._touch()  # after a wait, idle time counts from the reply
        self._step(coro, result)
        # None: the result went into the coroutine; nothing is left unhandled.

    def _crashed(self, failure):
        # _answer_now and _answer turn every error into a reply; reaching
        # here is our bug.
        self.log.failure("TCP door failed on a message from {peer}", failure, peer=self.peer)
        self._write(self._root_error(errors.UnhandledError(), ""))

    def _write(self, message):
        if self.transport is not None and self.connected and not self._hung_up:
            try:
                data = encode(message)
            except (TypeError, ValueError):
                data = encode(self._without_bad_values(message))
            self.transport.write(data)

    def _without_bad_values(self, message):
        """The reply with each entry that is not JSON turned into error 100.

        Encoding the whole reply once is the common, fast path; this runs
        only when that failed."""
        entries = message.get("data")
        if not isinstance(entries, list):
            self.log.error("a message to {peer} is not JSON: {m!r}", peer=self.peer, m=message)
            return self._root_error(errors.UnhandledError(), message.get("session", ""))
        repaired = []
        for entry in entries:
            try:
                json.dumps(entry)
            except (TypeError, ValueError):
                self.log.error("{fname} returned a value that is not JSON: {value!r}",
                               fname=entry.get("fname"), value=entry.get("data"))
                error = errors.UnhandledError("the function returned a value that is not JSON")
                entry = {"fname": entry.get("fname"), "data": None, "error": error.as_dict()}
            repaired.append(entry)
        return dict(message, data=repaired)

    # -- messages --------------------------------------------------------

    def _answer_now(self, frame):
        """The reply to one message, or the ``_answer`` coroutine that will
        make it when something must wait (a login, a store that needs I/O,
        a function that returns a Deferred). Every message's path: the
        common case, calls on a session the store holds, makes no coroutine
        and no Deferred."""
        session_id = ""
        try:
            if type(frame) is not bytes:
                raise frame  # an HpxdError found while framing
            message = decode(frame, self.factory.config.max_message_bytes)
            session_id = message.get("session", "")
            data = message["data"]
            if type(data) is not list or not session_id:
                return self._answer(message)
            session = self.factory.node.sessions.get_now(session_id)
            if session is None:  # the store must ask elsewhere (Redis)
                return self._answer(message)
            if session_id != self.session_id:
                self._authenticated(session)
            reply = self._run_calls(session, data, [])
            if type(reply) is Paused:
                return self._answer(message, session, reply)
            return reply
        except errors.HpxdError as e:
            return self._error_reply(e, session_id)

    async def _answer(self, message, session=None, paused=None):
        """``_answer_now`` for messages that wait; ``paused`` carries on a
        call list where ``_run_calls`` stopped."""
        session_id = message.get("session", "")
        try:
            data = message["data"]
            if paused is None:
                if isinstance(data, dict):
                    return await self._handshake(data)
                if not isinstance(data, list):
                    return await self._command(session_id, data)
                if not session_id:
                    raise errors.AuthRequired("do the handshake first, or send your session id")
                session = await self.factory.node.sessions.get(session_id)
                if session_id != self.session_id:
                    self._authenticated(session)
                paused = self._run_calls(session, data, [])
            while type(paused) is Paused:
                fname = paused.fname
                try:
                    entry = {"fname": fname, "data": await paused.later.rest}
                except errors.HpxdError as e:
                    entry = {"fname": fname, "data": None, "error": e.as_dict()}
                paused.results.append(entry)
                paused = self._run_calls(session, data, paused.results, paused.index + 1)
            return paused
        except errors.HpxdError as e:
            return self._error_reply(e, session_id)

    def _run_calls(self, session, calls, results, start=0):
        """Run ``calls[start:]`` in order, adding their entries to ``results``.

        Returns the reply, or ``Paused`` at the first call that must wait."""
        environ = self._environ or self._make_environ()
        dispatcher = self.factory.node.dispatcher
        for index in range(start, len(calls)):
            call = calls[index]
            # The call's other keys are its arguments: take "fname" out of
            # the dict (parsed for this message alone) instead of copying it.
            fname = call.pop("fname", None) if type(call) is dict else None
            if type(fname) is not str:
                results.append(bad_call(fname))
                continue
            try:
                result = dispatcher.start(session, fname, call, environ, fname)
            except errors.HpxdError as e:
                results.append({"fname": fname, "data": None, "error": e.as_dict()})
                continue
            if type(result) is Later:
                return Paused(results, index, fname, result)
            results.append({"fname": fname, "data": result})
        return {"session": session.id, "name": self.factory.node.name, "data": results}

    def _error_reply(self, error, session_id):
        self.log.info("TCP error {code} for {peer}: {msg}", code=error.code, msg=error.msg,
                      peer=self.peer)
        return self._root_error(error, session_id)

    def _envelope(self, data, session_id=""):
        return {"session": session_id, "name": self.factory.node.name, "data": data}

    def _root_error(self, error, session_id):
        reply = self._envelope({}, session_id)
        reply["error"] = error.as_dict()
        return reply

    def _greeting(self):
        return self._envelope({
            "version": {"core": list(hpxd.VERSION), "db": [0, 0, 0], "torrent": [0, 0, 0]},
            "guest_allowed": self.factory.node.auth.guest_allowed,
        })

    def _authenticated(self, session):
        self.session_id = session.id
        self._cancel_handshake_timer()

    async def _handshake(self, data):
        node = self.factory.node
        if not data:
            user_info = node.auth.guest()
        else:
            unknown = set(data) - {"user", "password"}
            if unknown:
                raise errors.InvalidMessage(
                    f"handshake takes {{}} or {{\"user\", \"password\"}}, not {sorted(unknown)}")
            if "user" not in data or "password" not in data:
                raise errors.MissingCredentials("a user handshake needs both 'user' and 'password'")
            user_info = await node.auth.login(data["user"], data["password"])
        session = await node.sessions.create(user_info)
        self._authenticated(session)
        return self._envelope("Authenticated", session.id)

    async def _session(self, session_id):
        if not session_id:
            raise errors.AuthRequired("do the handshake first, or send your session id")
        session = await self.factory.node.sessions.get(session_id)
        self._authenticated(session)
        return session

    _environ = None

    def _make_environ(self):
        # Read-only, one for all calls of the connection.
        self._environ = MappingProxyType({"door": "tcp", "peer": self.peer, "client": self})
        return self._environ

    async def _command(self, session_id, data):
        name = control.parse_command(data)
        if name == control.REQUESTAUTH:
            return self._greeting()
        session = await self._session(session_id) if session_id else None
        self.factory.node.control.run(session, name)
        return NO_REPLY  # the broadcast of the command is the reply

    # -- hub client --------------------------------------------------------

    def deliver(self, message):
        if message.kind == COMMAND:
            self._write(self._envelope(message.action))
            return
        push = self._envelope({"action": message.action, "data": message.data})
        if self._busy:
            # Never between a request and its reply: the reply comes first.
            self._held_pushes.append(push)
        else:
            self._write(push)


class HpxFactory(Factory):
    protocol = HpxProtocol
    noisy = False

    def __init__(self, node, config, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.node = node
        self.config = config
        self.clock = clock
        self.connections = set()
        self._all_closed = []

    def connection_lost(self, protocol):
        self.connections.discard(protocol)
        if not self.connections:
            waiting, self._all_closed = self._all_closed, []
            for d in waiting:
                d.callback(None)

    def close_all(self):
        """Close every connection once its current message is answered."""
        if not self.connections:
            return defer.succeed(None)
        d = defer.Deferred()
        self._all_closed.append(d)
        for protocol in list(self.connections):
            protocol.close_when_idle()
        return d


class TcpDoor(service.Service):
    """Listens on every ``[tcp] listen`` endpoint."""

    log = Logger()
    name = "tcp"

    def __init__(self, node, config, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.factory = HpxFactory(node, config, reactor)
        self.ports = []
        self.listening = None

    async def _listen(self):
        for description in self.config.listen:
            endpoint = endpoints.serverFromString(self.reactor, description)
            port = await endpoint.listen(self.factory)
            self.ports.append(port)
            address = port.getHost()
            self.log.info("hpxd tcp door listening on {host}:{port}",
                          host=getattr(address, "host", address), port=getattr(address, "port", ""))

    def privilegedStartService(self):
        """Listen before twistd drops privileges (-u/-g), so ports < 1024 work.

        ``self.listening`` fires when every port is open."""
        super().privilegedStartService()
        self.listening = defer.ensureDeferred(self._listen())

    def startService(self):
        super().startService()
        if self.listening is None:  # started without privilegedStartService
            self.listening = defer.ensureDeferred(self._listen())

    def stop_listening(self):
        ports, self.ports = self.ports, []
        return defer.DeferredList([defer.maybeDeferred(p.stopListening) for p in ports])

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        self.listening = None
        yield self.stop_listening()
        yield self.factory.close_all()

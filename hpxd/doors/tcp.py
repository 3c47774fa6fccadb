"""The TCP door: HappyPanda X RPC, gzip JSON messages ended by ``<EOF>``.

Wire format: docs/tcp.md. Four small pieces: ``FrameReceiver`` cuts bytes
into frames (the cap, pause and resume done once, as Twisted's
``NetstringReceiver`` and ``LineReceiver`` do); ``HpxProtocol`` turns each
frame into one reply through the core; ``HpxFactory`` holds what
connections share; ``TcpDoor`` is the ``IDoor`` service that listens,
drains and closes.
"""

import re
import zlib
from collections import deque

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

import hpxd
from hpxd.core import control, errors
from hpxd.core.app import POSITIONAL  # "*args": a call's positional arguments
from hpxd.core.doorkit import DoorKit, peer_text, repaired
from hpxd.core.hub import COMMAND
from hpxd.core.interfaces import IDoor
from hpxd.core.jsonvalues import NOT_ENCODABLE, load_json, to_json
from hpxd.doors import Backpressure, Listener, fire, waiter

EOF_MARK = b"<EOF>"
GZIP_MAGIC = b"\x1f\x8b"  # every gzip member, so every message, begins so
HEAD_BYTES = 64  # of a message that is not gzip, kept to say what it looks like
HTTP_REQUEST = re.compile(rb"^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE) ")
ENVELOPE_KEYS = frozenset({"session", "name", "data"})
MAX_QUEUED = 16  # frames read ahead of the one being answered before we stop reading
NO_REPLY = object()  # the message's answer went out another way (a broadcast)
LOGOUT = "logout"
NO_ARGS = ()


def inflate(frame, limit):
    """Gunzip ``frame``, refusing (410) as soon as output would pass ``limit``.

    Never inflates more than ``limit + 1`` bytes, so a gzip bomb costs no
    more memory than an honest message of the largest allowed size. A gzip
    file may hold several members, one after another: all are read, and
    bytes after the last one are refused, not ignored.
    """
    if not frame:
        raise errors.ParsingError("empty message: expected gzip data before <EOF>")
    out, rest = _inflate_member(frame, limit)
    if not rest:  # the usual message: one member
        return out
    parts, size = [out], len(out)
    while rest:
        out, rest = _inflate_member(rest, limit - size)
        parts.append(out)
        size += len(out)
    return b"".join(parts)


def _inflate_member(data, limit):
    """The first gzip member of ``data`` inflated, and the bytes after it."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as e:
        raise errors.ParsingError(f"bad gzip data ({e})") from None
    if len(out) > limit:
        raise errors.ParsingError(f"message inflates to more than {limit} bytes")
    if not inflater.eof:
        raise errors.ParsingError("truncated gzip data")
    return out, inflater.unused_data


def decode(frame, limit):
    """Frame bytes -> the envelope dict, or an HpxdError."""
    text = inflate(frame, limit)
    try:
        message = load_json(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise errors.ParsingError("message is not UTF-8") from None
    except ValueError as e:
        raise errors.JSONParseError(f"invalid JSON ({e})") from None
    return check_envelope(message)


def check_envelope(message):
    if type(message) is dict and len(message) == 3 and type(message.get("session")) is str \
            and type(message.get("name")) is str and "data" in message:
        return message  # the usual, complete envelope (three keys, these three)
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


class Unreadable:
    """In a receiver's frame queue: the start of a frame that cannot be a
    message (its ``head``, the first bytes)."""

    __slots__ = ("head",)

    def __init__(self, head):
        self.head = head


def not_a_message(head):
    """The error for bytes that do not begin as a message does."""
    if HTTP_REQUEST.match(head):
        return errors.ParsingError(
            "this is hpxd's TCP door, which speaks HappyPanda X messages (gzip JSON, each "
            "followed by <EOF>), not HTTP: send HTTP to the web door ([web] listen)")
    return errors.ParsingError("not a message: a message is gzip data followed by <EOF>, "
                               f"and gzip data begins with 1f 8b, not {head[:2].hex(' ')}")


def bad_call(fname):
    """The reply entry for a call that is not an object with a string "fname"."""
    error = errors.InvalidMessage('each call must be an object with a string "fname"')
    return {"fname": fname, "data": None, "error": error.as_dict()}


def encode(message):
    return zlib_gzip(to_json(message).encode("utf-8")) + EOF_MARK


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



def error_entry(fname, error):
    return {"fname": fname, "data": None, "error": error.as_dict()}


class FrameReceiver(Protocol):
    """Bytes -> frames ended by ``delimiter``, handed one at a time to
    ``frameReceived``.

    A protocol that answers a frame later calls ``pause_frames()`` and, once
    answered, ``resume_frames()``: frames read meanwhile wait, in order, and
    reading stops while more than ``max_waiting`` do. A frame longer than
    ``max_length`` goes to ``frameTooLong(length)``; more than ``max_length``
    bytes without a delimiter goes to ``frameTooLong(None)``, after which
    nothing more is read and the connection closes once the frames before
    it are answered (the next boundary cannot be found safely). So does a
    frame that does not begin with ``frame_start`` (gzip's magic number),
    at once rather than once ``max_length`` bytes came: it goes to
    ``frameUnreadable(head)``, ``head`` being its first bytes.
    """

    delimiter = EOF_MARK
    frame_start = GZIP_MAGIC
    max_length = 8 * 1024 * 1024
    max_waiting = MAX_QUEUED
    paused = False  # a frame is being answered later
    _reading_paused = False
    _read_no_more = False  # close once the frames before are answered
    _delivering = False

    def __init__(self):
        self._buffer = bytearray()  # the partial frame after the last delimiter
        self._scan_from = 0  # where in it the next delimiter search starts
        self._frames = deque()  # whole frames not yet handed over

    def frameReceived(self, frame):
        raise NotImplementedError

    def frameTooLong(self, length):
        raise NotImplementedError

    def frameUnreadable(self, head):
        raise NotImplementedError

    def dataReceived(self, data):
        if self._read_no_more:
            return
        delimiter = self.delimiter
        if (not self._buffer and not self._frames and not self.paused and not self._delivering
                and data.find(delimiter) == len(data) - len(delimiter) >= 0):
            # The usual read: one whole frame, nothing waiting before it.
            frame = data[:-len(delimiter)]
            if len(frame) > self.max_length:
                self.frameTooLong(len(frame))
            else:
                self.frameReceived(frame)
            if not self._frames and not self.paused and self._read_no_more:
                self.transport.loseConnection()
            return
        if not self._buffer and data.endswith(delimiter):
            # The common case: the read holds whole frames and nothing more.
            self._frames.extend(data[:-len(self.delimiter)].split(self.delimiter))
        else:
            self._split(data)
        if len(self._frames) > self.max_waiting and not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()
        self._deliver()

    def _split(self, data):
        """Add each whole frame of the buffer to ``_frames``; keep the rest.

        One ``find`` per frame from where the last search stopped and one
        deletion per read: a large frame arriving in many reads costs O(n)."""
        buffer = self._buffer
        buffer += data
        size, start = len(self.delimiter), 0
        while True:
            end = buffer.find(self.delimiter, max(start, self._scan_from))
            if end < 0:
                break
            self._frames.append(bytes(buffer[start:end]))
            start = end + size
        if start:
            del buffer[:start]
        self._scan_from = max(0, len(buffer) - size + 1)
        if buffer and not self.frame_start.startswith(bytes(buffer[:len(self.frame_start)])):
            self._frames.append(Unreadable(bytes(buffer[:HEAD_BYTES])))  # in its turn
            buffer.clear()
            self._read_no_more = True  # no boundary to trust after it
        elif len(buffer) > self.max_length:
            buffer.clear()
            self._scan_from = 0
            self._frames.append(None)  # frameTooLong(None), in its turn
            self._read_no_more = True  # the next boundary cannot be found safely

    def _deliver(self):
        # A loop, not recursion: resume_frames() called from inside
        # frameReceived (an answer ready at once) lets this loop go on.
        if self._delivering:
            return
        self._delivering = True
        try:
            frames = self._frames
            while frames and not self.paused:
                frame = frames.popleft()
                if frame is None:
                    self.frameTooLong(None)
                elif type(frame) is Unreadable:
                    self.frameUnreadable(frame.head)
                elif len(frame) > self.max_length:
                    self.frameTooLong(len(frame))
                else:
                    self.frameReceived(frame)
            if not frames and not self.paused:
                if self._reading_paused:
                    self._reading_paused = False
                    self.transport.resumeProducing()
                if self._read_no_more:
                    self.transport.loseConnection()
        finally:
            self._delivering = False

    def pause_frames(self):
        self.paused = True

    def resume_frames(self):
        self.paused = False
        self._deliver()

    def drop_frames(self):
        """Forget every frame not yet handed over, read no more, and close
        once the frame in hand (if any) is answered."""
        self._frames.clear()
        self._buffer.clear()
        self._read_no_more = True

    @property
    def frames_waiting(self):
        return len(self._frames)


class HpxProtocol(FrameReceiver):
    """One TCP connection: frames in, replies out. Its ``conn`` (the door
    kit's ``Connection``) holds its session, environ and traffic counts and
    is the hub's client; pushes come back through ``deliver``."""

    log = Logger()
    conn = None

    def __init__(self):
        super().__init__()
        self._answering = False  # between a frame and its reply
        self._gone = False  # the client hung up
        self._hung_up = False  # we hung up (timeout): write nothing more
        self._closing = False  # server shutdown: close after the reply in hand
        self._held = []  # pushes and sent values waiting for the reply in hand
        self._handshake_timer = None
        self._idle_timer = None
        self._last_activity = 0.0
        self._asked_session = ""  # the session id of the message being answered
        self._data_seen = False  # set by the first dataReceived

    # -- connection life -------------------------------------------------

    @property
    def peer(self):
        return self.conn.peer

    def connectionMade(self):
        factory = self.factory
        self.max_length = factory.config.max_message_bytes
        self.conn = factory.kit.connect(self, peer_text(self.transport.getPeer()))
        self.conn.open()
        self._touch()
        self._backpressure = Backpressure(self._too_slow, factory.config.max_queued_bytes)
        self.transport.registerProducer(self._backpressure, True)
        if factory.config.idle_timeout:
            self._idle_timer = factory.clock.callLater(factory.config.idle_timeout,
                                                       self._idle_check)
        if factory.config.handshake_timeout:
            self._handshake_timer = factory.clock.callLater(
                factory.config.handshake_timeout, self._handshake_timed_out)
        self._write(self._greeting())

    def connectionLost(self, reason):
        # Calls the client queued are dropped, not run; a call list being
        # answered stops after the call in hand (see _run_calls).
        self._gone = True
        self.drop_frames()
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.cancel()
        self._idle_timer = None
        self._cancel_handshake_timer()
        self.conn.close()
        self.factory.connection_lost()

    def _too_slow(self, queued):
        self.conn.too_slow(queued)
        self._hung_up = True
        self.transport.abortConnection()

    def _touch(self):
        # Cheaper than moving a timer on every message: the idle timer reads
        # this when it fires and sleeps again for the time still left.
        self._last_activity = self.factory.clock.seconds()

    def _idle_check(self):
        timeout = self.factory.config.idle_timeout
        left = timeout - (self.factory.clock.seconds() - self._last_activity)
        if self._answering or left > 0:  # a long call is not idleness
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
        self.drop_frames()
        self.transport.loseConnection()

    def _cancel_handshake_timer(self):
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None

    def close_when_idle(self):
        """Finish the message in hand, then close (server shutdown)."""
        self._closing = True
        self.drop_frames()
        if not self._answering:
            self.transport.loseConnection()

    @property
    def idle(self):
        """No message in hand and none waiting: what the door's drain waits for."""
        return not self._answering and not self.frames_waiting

    # -- frames in, replies out -------------------------------------------

    def dataReceived(self, data):
        self.conn.bytes_in += len(data)
        if self._closing:
            return
        self._last_activity = self.factory.clock.seconds()  # see _touch
        if not self._data_seen:
            self._first_data()
        FrameReceiver.dataReceived(self, data)

    def _first_data(self):
        # Behind haproxy the real address is known only once the PROXY
        # header has been read, after connectionMade; it is settled by the
        # time our first data arrives.
        self._data_seen = True
        self.conn.set_peer(peer_text(self.transport.getPeer()))

    def frameReceived(self, frame):
        self._answering = True
        self.conn.messages += 1
        try:
            reply = self._answer(frame)
        except Exception:
            reply = self._crashed(Failure())
        if type(reply) is not Deferred:
            self._replied(reply)
            return
        self.pause_frames()
        reply.addCallbacks(self._replied_later, self._failed_later)

    def frameUnreadable(self, head):
        self._answering = True
        self.log.info("tcp client {peer} sent what is not a message: {head!r}", peer=self.peer,
                      head=head[:HEAD_BYTES])
        self._replied(self._error_reply(not_a_message(head), ""))

    def frameTooLong(self, length):
        self._answering = True
        limit = self.max_length
        self._replied(self._error_reply(
            errors.ParsingError(f"message larger than {limit} bytes"), ""))

    def _replied(self, reply):
        """Write the reply, then what was held back for it."""
        if reply is not NO_REPLY:
            self._write(reply)
        self._answering = False
        if self._held:
            held, self._held = self._held, []
            for message in held:
                self._write(message)
        if self._closing:
            self.transport.loseConnection()
        if self.factory.drain_waiters:
            self.factory.check_drained()

    def _replied_later(self, reply):
        self._touch()  # after a wait, idle time counts from the reply
        self._replied(reply)
        self.resume_frames()

    def _failed_later(self, failure):
        if failure.check(errors.HpxdError):
            reply = self._error_reply(failure.value, self._asked_session)
        else:
            reply = self._crashed(failure)
        self._replied_later(reply)

    def _crashed(self, failure):
        # _answer turns every error into a reply; reaching here is our bug.
        self.log.failure("TCP door failed on a message from {peer}", failure, peer=self.peer)
        return self._root_error(errors.UnhandledError(), "")

    def _write(self, message):
        if self.transport is not None and self.connected and not self._hung_up:
            try:
                data = encode(message)
            except NOT_ENCODABLE:
                data = encode(self._without_bad_values(message))
            self.transport.write(data)
            self.conn.bytes_out += len(data)
            if self._backpressure.paused:  # the client is not reading
                self._backpressure.wrote(len(data))

    def _without_bad_values(self, message):
        """The reply with each entry that is not JSON turned into error 100.

        Encoding the whole reply once is the common, fast path; this runs
        only when that failed."""
        entries = message.get("data")
        if not isinstance(entries, list):
            _, error = repaired(message, f"a message to {self.peer}")
            return self._root_error(error, message.get("session", ""))
        return dict(message, data=[self._repaired_entry(entry) for entry in entries])

    @staticmethod
    def _repaired_entry(entry):
        fname = entry.get("fname")
        data, error = repaired(entry.get("data"), fname)
        return entry if error is None else error_entry(fname, error)

    # -- one message -------------------------------------------------------

    def _answer(self, frame):
        """The reply to one frame: a message, NO_REPLY, or a Deferred of one
        when something must wait (a login, a store that needs I/O, a
        function that returns a Deferred). The common case, calls on a
        session the store holds, makes no Deferred."""
        session_id = self._asked_session = ""  # for a root error that comes later
        try:
            message = decode(frame, self.max_length)
            session_id = self._asked_session = message.get("session", "")
            data = message["data"]
            if type(data) is list:
                # Every call's path: the session look-up of _with_session, inline.
                session = self.conn.session_now(session_id) if session_id else None
                if session is None:
                    return self._with_session(session_id, self._run_calls, data)
                if self._handshake_timer is not None:
                    self._cancel_handshake_timer()
                return self._run_calls(session, data)
            if type(data) is dict:
                return self._handshake(data)
            return self._command(session_id, data)
        except errors.HpxdError as e:
            return self._error_reply(e, session_id)

    def _with_session(self, session_id, then, *args):
        """``then(session, *args)`` with the live session: at once when the
        store answers at once (memory), else when it has (Redis) — one
        callback on the look-up, which every message of every call makes."""
        if not session_id:
            raise errors.AuthRequired("do the handshake first, or send your session id")
        session = self.conn.session_now(session_id)
        if session is None:  # the store must ask elsewhere
            return self.conn.session(session_id).addCallback(self._in_session, then, args)
        return self._in_session(session, then, args)

    def _in_session(self, session, then, args):
        self._cancel_handshake_timer()  # a session is in use: the handshake is done
        return then(session, *args)

    def _run_calls(self, session, calls, results=None, start=0):
        """Run ``calls[start:]`` in order; the reply, or a Deferred of it at
        the first call that must wait (the rest run once it has answered)."""
        if self._gone:
            return NO_REPLY  # the client left: run none of its calls
        if results is None:
            results = []
        call_now = self.factory.node.dispatcher.call_now
        environ = self.conn.environ
        for index in range(start, len(calls)):
            call = calls[index]
            # The call's other keys are its arguments: take "fname" out of
            # the dict (parsed for this message alone) instead of copying it.
            fname = call.pop("fname", None) if type(call) is dict else None
            if type(fname) is not str:
                results.append(bad_call(fname))
                continue
            try:
                args = call.pop(POSITIONAL, NO_ARGS)
                if type(args) is not list and args is not NO_ARGS:
                    raise errors.BadArguments(f'{fname}: "{POSITIONAL}" must be a list')
                result = call_now(session, fname, args, call, environ, self._send)
            except errors.HpxdError as e:
                results.append(error_entry(fname, e))
                continue
            if type(result) is Deferred:  # it must wait: the rest go on once it answers
                return result.addCallbacks(self._entry, self._failed_entry, (fname,), None,
                                           (fname,)).addCallback(
                    self._run_the_rest, session, calls, results, index)
            results.append({"fname": fname, "data": result})
        return {"session": session.id, "name": self.factory.node.name, "data": results}

    def _run_the_rest(self, entry, session, calls, results, index):
        results.append(entry)
        return self._run_calls(session, calls, results, index + 1)

    @staticmethod
    def _entry(result, fname):
        return {"fname": fname, "data": result}

    @staticmethod
    def _failed_entry(failure, fname):
        failure.trap(errors.HpxdError)  # the dispatcher gives nothing else
        return error_entry(fname, failure.value)

    def _send(self, function_name, value):
        """The call sink: ``item.send`` values go out as pushes right after
        the call's reply (docs/tcp.md), or at once when no reply is due."""
        self._push(self._envelope({"action": function_name, "data": value}))

    def _error_reply(self, error, session_id):
        self.conn.refused(error)
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

    # -- handshake, logout, server commands ---------------------------------

    def _handshake(self, data):
        unknown = set(data) - {"user", "password"}
        if unknown:
            raise errors.InvalidMessage(
                f"handshake takes {{}} or {{\"user\", \"password\"}}, not {sorted(unknown)}")
        if data:
            d = self.conn.login(data.get("user"), data.get("password"))
        else:
            d = self.conn.guest()
        return d.addCallbacks(self._handshaken, self._login_refused)

    def _handshaken(self, session):
        self._cancel_handshake_timer()
        return self._envelope("Authenticated", session.id)

    def _login_refused(self, failure):
        failure.trap(errors.HpxdError)
        return self._root_error(failure.value, "")  # the core logged it, once

    def _command(self, session_id, data):
        if type(data) is str and data.lower() == LOGOUT:
            return self._logout(session_id)
        name = control.parse_command(data)
        if name == control.REQUESTAUTH:
            return self._greeting()
        if not session_id:
            return self._run_command(None, name)
        return self._with_session(session_id, self._run_command, name)

    def _run_command(self, session, name):
        self.conn.command(name, session)
        return NO_REPLY  # the command, pushed to every client, is the reply

    def _logout(self, session_id):
        if not session_id:
            raise errors.AuthRequired("do the handshake first, or send your session id")
        return self.conn.logout(session_id).addCallback(lambda _: self._envelope("Logged out"))

    # -- hub client --------------------------------------------------------

    def deliver(self, message):
        """A hub message for this connection (``conn`` forwards it here)."""
        if message.kind == COMMAND:
            self._write(self._envelope(message.action))
            return
        push = {"action": message.action, "data": message.data}
        if message.stream is not None:
            push["stream"] = message.stream
        self._push(self._envelope(push))

    def _push(self, message):
        if self._answering:
            # Never between a request and its reply: the reply comes first.
            self._held.append(message)
        else:
            self._write(message)


class HpxFactory(Factory):
    protocol = HpxProtocol
    noisy = False

    def logPrefix(self):
        # Twisted announces each listening port as "<this> starting on <port>".
        return "hpxd tcp door"

    def __init__(self, node, config, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.node = node
        self.config = config
        self.clock = clock
        self.kit = DoorKit(node, "tcp", clock=clock)
        self._all_closed = []
        self.drain_waiters = []  # drain() Deferreds: fired once every connection is idle

    @property
    def connections(self):
        """The protocols of the open connections."""
        return self.kit.protocols()

    def connection_lost(self):
        if not self.kit.connections:
            fire(self._all_closed)
        self.check_drained()

    def close_all(self):
        """Close every connection once its current message is answered.

        Cancelling the Deferred (a timeout) drops those still open at once."""
        if not self.connections:
            return defer.succeed(None)
        d = waiter(self._all_closed, on_cancel=self._abort_all)
        for protocol in self.connections:
            protocol.close_when_idle()
        return d

    def _abort_all(self):
        for protocol in self.connections:
            protocol.transport.abortConnection()

    def drain(self):
        """Fire once no connection has a message in hand or waiting."""
        d = waiter(self.drain_waiters)
        self.check_drained()
        return d

    def check_drained(self):
        if self.drain_waiters and all(p.idle for p in self.connections):
            fire(self.drain_waiters)


@implementer(IDoor)
class TcpDoor(Listener):
    """Listens on every ``[tcp] listen`` endpoint."""

    name = "tcp"

    def __init__(self, node, config, reactor=None):
        # The [tcp] section itself: a reload changes its limits in place.
        super().__init__(config.tcp, reactor)
        self.factory = HpxFactory(node, config.tcp, self.reactor)

    def drain(self):
        return self.factory.drain()

    def close_connections(self, reason=None):
        return self.factory.close_all()

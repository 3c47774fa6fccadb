"""One client interface per door, for tests/test_door_conformance.py.

Each door's client speaks that door's own wire format over a real socket and
offers the same methods, so one suite checks every door against the same
contract. A door joins by adding its client class to ``CLIENTS``.

Errors come back as ``DoorError(code, msg)``; values a function sends with
``item.send`` come back with the call's result; pushes that arrive meanwhile
are kept in ``client.pushes`` as ``(action, data, stream)``. ``events()`` reads
to the end of the connection, as ``("reply", value)``, ``("push", action)``
and ``("command", name)`` in the order they arrived.
"""

import gzip
import json
from dataclasses import dataclass, field

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, endpoints
from twisted.internet.protocol import Protocol

EOF_MARK = b"<EOF>"
CLOSED = object()
TIMEOUT = 10


class DoorError(Exception):
    def __init__(self, code, msg):
        super().__init__(f"{code}: {msg}")
        self.code, self.msg = code, msg


@dataclass
class Result:
    value: object
    sent: list = field(default_factory=list)


class _HpxWire(Protocol):
    """EOF-delimited gzip JSON, each decoded message queued in arrival order."""

    def __init__(self):
        self.messages = defer.DeferredQueue()
        self.buffer = b""
        self.lost = defer.Deferred()

    def dataReceived(self, data):
        self.buffer += data
        *frames, self.buffer = self.buffer.split(EOF_MARK)
        for raw in frames:
            self.messages.put(json.loads(gzip.decompress(raw)))

    def connectionLost(self, reason):
        self.messages.put(CLOSED)
        self.lost.callback(None)

    def send(self, message):
        self.transport.write(gzip.compress(json.dumps(message).encode()) + EOF_MARK)

    def next(self, timeout=TIMEOUT):
        from twisted.internet import reactor
        return self.messages.get().addTimeout(timeout, reactor)


class TcpClient:
    """The HPX TCP door (docs/tcp.md)."""

    door = "tcp"

    def __init__(self, wire, greeting):
        self.wire = wire
        self.greeting = greeting
        self.session = ""
        self.pushes = []

    @classmethod
    async def connect(cls, service):
        from twisted.internet import reactor
        [address] = [a for door in service.doors if door.name == "tcp" for a in door.addresses()]
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", address.port)
        wire = await endpoints.connectProtocol(endpoint, _HpxWire())
        return cls(wire, await wire.next())

    @property
    def peer(self):
        """How the server names this client in its log: host:port."""
        address = self.wire.transport.getHost()
        return f"{address.host}:{address.port}"

    def close(self):
        self.wire.transport.loseConnection()
        return self.wire.lost

    # -- the contract ----------------------------------------------------------

    async def guest(self):
        return await self._enter({})

    async def login(self, user, password):
        return await self._enter({"user": user, "password": password})

    async def attach(self, session_id):
        # HPX attaches by sending the session id in the envelope: an empty
        # call list binds this connection to the session (pushes to the
        # session reach it from then on), or is refused with 408.
        self.session = session_id
        self._raise_root_error(await self._request([]))

    async def logout(self):
        reply = await self._request("logout")
        self._raise_root_error(reply)
        self.session = ""

    async def call(self, fname, args=None, kwargs=None):
        self.start_call(fname, args, kwargs)
        # requestauth answers with the greeting once every message before it
        # is answered and the values held for its reply are written: a barrier.
        self.wire.send(self._envelope("requestauth"))
        reply, sent = None, []
        while True:
            message = await self._next()
            data = message.get("data")
            if reply is None:
                if self._is_push(message):
                    self._keep_push(data)
                    continue
                reply = message
            elif self._is_push(message) and data["action"] == fname:
                sent.append(data["data"])  # item.send values follow the reply
            elif self._is_push(message):
                self._keep_push(data)
            elif message == self.greeting:
                break
        self._raise_root_error(reply)
        [entry] = reply["data"]
        if "error" in entry:
            raise DoorError(entry["error"]["code"], entry["error"]["msg"])
        return Result(entry["data"], sent)

    def start_call(self, fname, args=None, kwargs=None):
        """Send a call without waiting for its answer."""
        call = {"fname": fname, **(kwargs or {})}
        if args is not None:
            call["*args"] = list(args)
        self.wire.send(self._envelope([call]))

    def command(self, name):
        self.wire.send(self._envelope(name))

    async def next_push(self):
        while not self.pushes:
            message = await self._next()
            if not self._is_push(message):
                raise AssertionError(f"expected a push, got {message!r}")
            self._keep_push(message["data"])
        return self.pushes.pop(0)

    async def events(self):
        """Every message up to the server closing the connection, in order."""
        out = []
        while True:
            message = await self.wire.next()
            if message is CLOSED:
                return out
            data = message.get("data")
            if self._is_push(message):
                out.append(("push", data["action"]))
            elif message.get("session") == "" and isinstance(data, str) and "error" not in message:
                out.append(("command", data))
            else:
                entries = data if isinstance(data, list) else []
                out.append(("reply", [e.get("data") for e in entries]))

    # -- HPX details -------------------------------------------------------------

    async def _enter(self, data):
        reply = await self._request(data)
        self._raise_root_error(reply)
        assert reply["data"] == "Authenticated"
        self.session = reply["session"]
        return self.session

    async def _request(self, data):
        self.wire.send(self._envelope(data))
        while True:
            message = await self._next()
            if not self._is_push(message):
                return message
            self._keep_push(message["data"])

    async def _next(self):
        message = await self.wire.next()
        if message is CLOSED:
            raise ConnectionError("the server closed the connection")
        return message

    def _envelope(self, data):
        return {"session": self.session, "name": "conformance", "data": data}

    @staticmethod
    def _is_push(message):
        data = message.get("data")
        return (message.get("session") == "" and isinstance(data, dict) and "action" in data
                and "error" not in message)

    def _keep_push(self, data):
        self.pushes.append((data["action"], data["data"], data.get("stream")))

    @staticmethod
    def _raise_root_error(reply):
        if "error" in reply:
            raise DoorError(reply["error"]["code"], reply["error"]["msg"])


class _WsWire(WebSocketClientProtocol):
    """Igor JSON text messages, each decoded one queued in arrival order."""

    def __init__(self):
        super().__init__()
        self.messages = defer.DeferredQueue()
        self.opened = defer.Deferred()
        self.lost = defer.Deferred()
        self.close_code = None

    def onOpen(self):
        self.opened.callback(None)

    def onMessage(self, payload, isBinary):
        self.messages.put(json.loads(payload))

    def onClose(self, wasClean, code, reason):
        self.close_code = code
        self.messages.put(CLOSED)
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"handshake refused: {reason}"))
        if not self.lost.called:
            self.lost.callback(None)

    def send(self, message):
        self.sendMessage(json.dumps(message).encode("utf-8"))

    def next(self, timeout=TIMEOUT):
        from twisted.internet import reactor
        return self.messages.get().addTimeout(timeout, reactor)


class WsClient:
    """The WebSocket door at /ws (docs/websocket.md)."""

    door = "ws"

    def __init__(self, wire):
        self.wire = wire
        self.pushes = []
        self.session = None
        self._streams = 0
        self._commands = set()

    @classmethod
    async def connect(cls, service):
        from twisted.internet import reactor
        [address] = [a for door in service.doors if door.name == "web" for a in door.addresses()]
        factory = WebSocketClientFactory(f"ws://127.0.0.1:{address.port}/ws")
        factory.protocol = _WsWire
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", address.port)
        wire = await endpoint.connect(factory)
        await wire.opened.addTimeout(TIMEOUT, reactor)
        return cls(wire)

    @property
    def peer(self):
        address = self.wire.transport.getHost()
        return f"{address.host}:{address.port}"

    def close(self):
        if not self.wire.lost.called:
            self.wire.sendClose()
        return self.wire.lost

    # -- the contract ----------------------------------------------------------

    async def guest(self):
        return await self._enter("session", None)

    async def login(self, user, password):
        return await self._enter("login", {"user": user, "password": password})

    async def attach(self, session_id):
        return await self._enter("attach", {"session": session_id})

    async def logout(self):
        await self._ask("logout", None)
        self.session = None

    async def call(self, fname, args=None, kwargs=None):
        values = await self._ask(fname, _data(args, kwargs))
        # The return value is the last data message; the ones before were sent.
        returned = values.pop() if values else None
        return Result(returned, values)

    def start_call(self, fname, args=None, kwargs=None):
        self._start(fname, _data(args, kwargs))

    def command(self, name):
        # Every action's stream closes; a command's close is no reply.
        self._commands.add(self._start(name, None))

    async def next_push(self):
        while not self.pushes:
            message = await self._next()
            if "action" not in message:
                raise AssertionError(f"expected a push, got {message!r}")
            self._keep_push(message)
        return self.pushes.pop(0)

    async def events(self):
        out, values = [], {}
        while True:
            message = await self.wire.next()
            if message is CLOSED:
                return out
            stream = message.get("streamId")
            if "action" in message:
                kind = "command" if stream == "server" else "push"
                out.append((kind, message["action"]))
            elif message.get("close"):
                if stream not in self._commands:
                    out.append(("reply", values.pop(stream, [])))
            elif "data" in message:
                values.setdefault(stream, []).append(message["data"])

    # -- Igor details -----------------------------------------------------------

    async def _enter(self, action, data):
        [answer] = await self._ask(action, data)
        self.session = answer["session"]
        return self.session

    def _start(self, action, data):
        self._streams += 1
        self.wire.send({"streamId": self._streams, "action": action, "data": data})
        return self._streams

    async def _ask(self, action, data):
        """Send one action; its data values, up to its close; DoorError on error."""
        stream = self._start(action, data)
        values, error = [], None
        while True:
            message = await self._next()
            if "action" in message:
                self._keep_push(message)
            elif message.get("streamId") != stream:
                raise AssertionError(f"unexpected message {message!r}")
            elif message.get("close"):
                break
            elif "error" in message:
                error = DoorError(message["code"], message["error"])
            else:
                values.append(message["data"])
        if error is not None:
            raise error
        return values

    async def _next(self):
        message = await self.wire.next()
        if message is CLOSED:
            raise ConnectionError("the server closed the connection")
        return message

    def _keep_push(self, message):
        self.pushes.append((message["action"], message["data"], message.get("streamId")))


def _data(args, kwargs):
    """Igor's data: a list is positional, an object keyword ("*args" inside it
    for positional ones too), null none."""
    if args is not None and not kwargs:
        return list(args)
    data = dict(kwargs or {})
    if args is not None:
        data["*args"] = list(args)
    return data


CLIENTS = {"tcp": TcpClient, "ws": WsClient}

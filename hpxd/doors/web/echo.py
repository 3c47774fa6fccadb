"""A plain echo WebSocket at ``[web] echo_path`` (off by default).

It exists for the Autobahn|Testsuite (bench/autobahn_testsuite.py): every
text or binary message comes back as it came. Its factory gets the options
of ``/ws`` from the same function, so the testsuite checks hpxd's real
settings (size caps, 1009 closes, deflate limits, timeouts, Origin check),
not autobahn's defaults. Not for production: anyone may bounce data off it.
"""

from autobahn.exception import Disconnected
from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.internet import defer
from twisted.logger import Logger

from hpxd.doors import fire, waiter
from hpxd.doors.web.autobahn_adapter import ServerProtocol, send_close, take_over_producer
from hpxd.doors.web.websocket import UpgradingResource, set_websocket_options

GOING_AWAY = 1001
log = Logger("hpxd.doors.web.echo")


class ReadPause:
    """The echo's flow control: while the client does not read what is
    echoed (the transport's buffer is full) the client is not read either,
    so a sender that never reads cannot grow the daemon's memory."""

    def __init__(self, transport):
        self.transport = transport

    def pauseProducing(self):
        self.transport.pauseProducing()

    def resumeProducing(self):
        self.transport.resumeProducing()

    def stopProducing(self):
        pass


class EchoProtocol(ServerProtocol):

    def onOpen(self):
        self.factory.connections.add(self)
        # From now on the echo decides when to stop reading.
        take_over_producer(self, ReadPause(self.transport))

    def onMessage(self, payload, isBinary):
        try:
            self.sendMessage(payload, isBinary)
        except Disconnected:
            pass  # it came after a close frame went out: nobody to echo to

    def onClose(self, wasClean, code, reason):
        self.factory.connection_lost(self)

    def going_away(self, reason):
        send_close(self, GOING_AWAY, reason)


class EchoFactory(WebSocketServerFactory):
    protocol = EchoProtocol

    def __init__(self, config, reactor):
        super().__init__(reactor=reactor)
        self.connections = set()
        self._closed = []
        set_websocket_options(self, config)

    def connection_lost(self, connection):
        self.connections.discard(connection)
        if not self.connections:
            fire(self._closed)

    def close_all(self, reason=None):
        """Close every connection with 1001; cancelling the Deferred drops
        those that did not finish the closing handshake."""
        if not self.connections:
            return defer.succeed(None)
        d = waiter(self._closed, on_cancel=self._drop_all)
        for connection in list(self.connections):
            connection.going_away(f"hpxd: {reason or 'shutting down'}")
        return d

    def _drop_all(self):
        for connection in list(self.connections):
            connection.dropConnection(abort=True)


class Echo(UpgradingResource):
    """``[web] echo_path``, as ``build_root`` mounts it."""

    def __init__(self, node, config, reactor):
        self.factory = EchoFactory(config.web, reactor)
        super().__init__(self.factory, config.web.allowed_origins)
        log.warn("echo WebSocket at {path}: for conformance tests only, not for production",
                 path=config.web.echo_path)

    def drain(self):
        # An echo answers inside onMessage: there is never a call in flight.
        return defer.succeed(None)

"""What hpxd needs of autobahn (and of twisted.web under it) that neither
offers as public API: kept here, in one place, each with the reason.
``tests/test_autobahn_adapter.py`` fails loudly when a new release of
either library changes what this module relies on.

Everything else in hpxd's WebSocket code uses autobahn's public API:
``sendMessage`` (which raises ``Disconnected`` once a close frame went out),
``dropConnection``, ``ConnectionDeny`` and the protocol callbacks.
"""

from autobahn.twisted.websocket import WebSocketServerProtocol


def send_close(protocol, code, reason):
    """Start the closing handshake with ``code``.

    autobahn's public ``sendClose`` takes only 1000 and 3000-4999 (the codes
    an application may choose); a server also sends the protocol's own
    codes: 1001 (going away, on a quit) and 1003 (a data type it does not
    take). ``sendCloseFrame`` is the method autobahn itself sends those with.
    A close reason is at most 123 bytes: whole characters are cut.
    """
    reason_utf8 = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    protocol.sendCloseFrame(code=code, reasonUtf8=reason_utf8, isReply=False)


def take_over_producer(protocol, producer):
    """Register ``producer`` with the transport the WebSocket took over from
    twisted.web, so it learns when the client stops reading.

    twisted.web's ``HTTPChannel`` registered itself as that transport's
    producer; autobahn's ``WebSocketResource`` hands the transport to the
    WebSocket protocol and detaches the channel, but leaves the channel
    registered, so nobody would hear the transport's pause. (An IConsumer
    takes one producer at a time: the channel's goes first.)
    """
    transport = protocol.transport
    transport.unregisterProducer()
    transport.registerProducer(producer, True)


class ServerProtocol(WebSocketServerProtocol):
    """autobahn's server protocol that lets go of the TCP connection as soon
    as it has failed the WebSocket connection, and leaves no timer behind.

    With ``failByDrop=False`` autobahn sends the close frame (1009 for a
    message over the cap) and waits for the client's close. But when the
    cap is passed while inflating a permessage-deflate frame, autobahn stops
    reading that frame in its middle and then takes everything after it,
    the client's close frame too, for the rest of that frame: the close is
    never seen, and the connection hangs until the close-handshake timeout
    drops it (1006). RFC 6455 (7.1.7) says an endpoint that fails a
    connection must not process anything more from the peer: so, once
    autobahn has failed it (``failedByMe``), hpxd closes the TCP connection
    right after the close frame is written.
    """

    def dataReceived(self, data):
        super().dataReceived(data)
        if self.failedByMe and self.transport is not None:
            self.dropConnection(abort=False)

    def connectionLost(self, reason):
        # autobahn cancels its other timers when the connection is lost, but
        # not the close-handshake timeout: it would stay armed (holding the
        # protocol) for closeHandshakeTimeout after a connection dropped
        # before the client answered the close.
        timer, self.closeHandshakeTimeoutCall = self.closeHandshakeTimeoutCall, None
        if timer is not None:
            timer.cancel()
        super().connectionLost(reason)

"""The bare baseline for bench/ws.py: autobahn on twisted.web, and nothing else.

The same library, mounted the same way as hpxd's ``/ws`` (a twisted.web
``Site`` with autobahn's ``WebSocketResource`` at ``/ws``) with the same
autobahn options (hpxd's ``set_websocket_options`` on the default ``[web]``
section), one process; no sessions, auth, dispatch, streams or caps. It
answers the two actions bench/ws.py sends the way hpxd does, with the same
JSON bytes: a data message, then the close message of the stream.

    session       {"session": <id of hpxd's length>, "user": null, "role": "guest"}
    add [a, b]    a + b

    python bench/bare_ws_server.py [--port 0] [--interface 127.0.0.1]

Prints ``bare ws server listening on HOST:PORT`` once it listens.
"""

import argparse
import json
import secrets
import sys

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor
from twisted.web import resource, server

# hpxd's own option setter and defaults, so that the two servers differ only
# in what hpxd does on top of autobahn.
from hpxd.config import load as load_config  # noqa: E402
from hpxd.doors.web.websocket import set_websocket_options  # noqa: E402

BACKLOG = 1024  # hpxd's default [server] listen_backlog: bursts of connects


def answer(message):
    """The ``data`` of the reply to one request (a dict from JSON)."""
    action = message.get("action")
    if action == "session":
        # As long as hpxd's ids, so both servers send messages of one size.
        return {"session": secrets.token_urlsafe(32), "user": None, "role": "guest"}
    if action == "add":
        a, b = message["data"]
        return a + b
    raise ValueError(f"bare ws server: only session and add, not {action!r}")


class BareWebSocket(WebSocketServerProtocol):
    def onOpen(self):
        # twisted.web's HTTP channel that carried the upgrade is still the
        # transport's producer, which keeps it and the upgrade request alive
        # (about 2-3 KiB per connection). hpxd lets go of it; so does the
        # baseline, or the memory reference would count twisted.web's leftovers.
        self.transport.unregisterProducer()

    def onMessage(self, payload, isBinary):
        try:
            message = json.loads(payload)
            stream = message["streamId"]
            data = answer(message)
        except Exception as e:  # a benchmark server: say why and hang up
            print(f"bare ws server: bad message ({e!r})", file=sys.stderr, flush=True)
            self.dropConnection(abort=True)
            return
        self.sendMessage(json.dumps({"streamId": stream, "data": data}).encode("utf-8"))
        self.sendMessage(json.dumps({"streamId": stream, "close": True}).encode("utf-8"))


class QuietSite(server.Site):
    noisy = False

    def log(self, request):
        """No access log line per upgrade (hpxd writes none either)."""


def build_site():
    factory = WebSocketServerFactory()
    factory.protocol = BareWebSocket
    set_websocket_options(factory, load_config().web)
    root = resource.Resource()
    root.putChild(b"ws", WebSocketResource(factory))
    return QuietSite(root)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interface", default="127.0.0.1")
    args = parser.parse_args()
    port = reactor.listenTCP(args.port, build_site(), backlog=BACKLOG, interface=args.interface)
    address = port.getHost()
    print(f"bare ws server listening on {address.host}:{address.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()

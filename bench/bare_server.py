"""The bare baseline for bench/tcp.py: the HPX wire format and nothing else.

Same framing as hpxd's TCP door (UTF-8 JSON, gzip level 5, then ``<EOF>``),
same reactor, one process; no sessions, auth, dispatch, timeouts or caps.
It greets on connect, answers any handshake ``{...}`` with a new session id
of hpxd's length (remembered nowhere and never checked), and answers a call
list by running ``add`` on each entry.

    python bench/bare_server.py [--port 0] [--interface 127.0.0.1]

Prints ``bare server listening on HOST:PORT`` once it listens.
"""

import argparse
import json
import secrets
import sys
import zlib

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

EOF_MARK = b"<EOF>"
NAME = "bare"


# The framing is hpxd's own, so that the two servers differ only in what
# hpxd adds on top (sessions, auth, dispatch, caps, timeouts).
from hpxd.doors.tcp import encode  # noqa: E402


def decode(frame):
    return json.loads(zlib.decompress(frame, 16 + zlib.MAX_WBITS).decode("utf-8"))


GREETING = encode({"session": "", "name": NAME,
                   "data": {"version": {"core": [0, 0, 0], "db": [0, 0, 0], "torrent": [0, 0, 0]},
                            "guest_allowed": True}})


def new_session_id():
    # As long as hpxd's (hpxd.core.sessions.new_session_id), so requests and
    # replies carry the same bytes to both servers: a one-letter id would
    # make every bare message shorter and cheaper to inflate, parse and
    # compress, and the ratio would measure message size, not hpxd's work.
    return secrets.token_urlsafe(32)


def answer(message):
    data = message.get("data")
    if isinstance(data, dict):
        return {"session": new_session_id(), "name": NAME, "data": "Authenticated"}
    if isinstance(data, list):
        results = []
        for call in data:
            if call.get("fname") == "add":
                results.append({"fname": "add", "data": call["a"] + call["b"]})
            else:
                results.append({"fname": call.get("fname"), "data": None,
                                "error": {"code": 404, "msg": "bare server: only add"}})
        return {"session": message.get("session", ""), "name": NAME, "data": results}
    return {"session": "", "name": NAME, "data": {}, "error": {"code": 400, "msg": "bare server"}}


class BareProtocol(Protocol):
    def connectionMade(self):
        self.buffer = b""
        self.transport.write(GREETING)

    def dataReceived(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(EOF_MARK)
            if end < 0:
                return
            frame, self.buffer = self.buffer[:end], self.buffer[end + len(EOF_MARK):]
            try:
                reply = answer(decode(frame))
            except Exception as e:  # a benchmark server: say why and hang up
                print(f"bare server: bad message ({e!r})", file=sys.stderr, flush=True)
                self.transport.loseConnection()
                return
            self.transport.write(encode(reply))


class BareFactory(Factory):
    protocol = BareProtocol
    noisy = False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interface", default="127.0.0.1")
    args = parser.parse_args()
    port = reactor.listenTCP(args.port, BareFactory(), interface=args.interface)
    address = port.getHost()
    print(f"bare server listening on {address.host}:{address.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()

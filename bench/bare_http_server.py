"""The bare baseline for bench/http_doors.py: twisted.web and the JSON work, nothing else.

A twisted.web ``Site`` (same reactor, one process) with two leaf resources
that do what hpxd's doors do to the bytes of the bench's calls, and no
sessions, auth, dispatch, Origin check, metrics, gzip wrapper or caps:

    POST /ajax/<name>   urlencoded form; each value after \\x00 is JSON:
                        answers a + b as JSON (Heapkeeper's wire)
    POST /api           Jam.py's ["server", task_id, item_id, ["test", [a, b]], mod]:
                        answers {"result": {"status": 9, "data": [a + b, ""],
                        "modification": mod}, "error": null}

Replies carry the headers hpxd's do (JSON content type with charset,
``Cache-Control: no-store``), so both servers send the same bytes.

    python bench/bare_http_server.py [--port 0] [--interface 127.0.0.1]

Prints ``bare http server listening on HOST:PORT`` once it listens.
"""

import argparse
import json

from twisted.internet import reactor
from twisted.web import resource, server

JSON_TYPE = b"application/json; charset=utf-8"
BACKLOG = 1024  # hpxd's default [server] listen_backlog


def json_reply(request, status, value):
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON_TYPE)
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(value).encode("utf-8")


class Ajax(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        kwargs = {}
        for name, values in request.args.items():
            value = values[0].decode("utf-8")
            kwargs[name.decode("utf-8")] = json.loads(value[1:]) if value[:1] == "\x00" else value
        try:
            return json_reply(request, 200, kwargs["a"] + kwargs["b"])
        except (KeyError, TypeError):
            return json_reply(request, 400, {"error": "bare server: a and b", "code": 413})


class Api(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        try:
            kind, _task_id, _item_id, params, modification = json.loads(request.content.read())
            name, (a, b) = params
            if kind != "server" or name != "test":
                raise ValueError(kind)
            # [result, error]: hpxd's Jam.py door says "" for no error, as Jam.py does.
            result = {"status": 9, "data": [a + b, ""], "modification": modification}
            return json_reply(request, 200, {"result": result, "error": None})
        except (ValueError, TypeError):
            return json_reply(request, 400, {"error": "bare server: only server test"})


class QuietSite(server.Site):
    noisy = False

    def log(self, request):
        """No access log line per request (hpxd writes none either)."""


def build_site():
    root = resource.Resource()
    root.putChild(b"ajax", Ajax())
    root.putChild(b"api", Api())
    return QuietSite(root)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interface", default="127.0.0.1")
    args = parser.parse_args()
    port = reactor.listenTCP(args.port, build_site(), backlog=BACKLOG, interface=args.interface)
    address = port.getHost()
    print(f"bare http server listening on {address.host}:{address.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()

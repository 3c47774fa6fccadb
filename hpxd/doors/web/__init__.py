"""The web door: one twisted.web ``Site`` on every ``[web] listen`` endpoint.

Its resource tree is assembled from what each web resource module of this
package contributes, through ``hpxd.doors.WEB_RESOURCES`` (top-level path
segment -> resource factory), so a new one is added in that one place. A
path nobody claims answers a JSON 404. The JSON helpers here are what every
web resource answers with.
``WebDoor`` is the ``IDoor`` the service drives: it tracks HTTP connections
and requests in flight so the quit sequence can drain and close them.
"""

import json

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.reflect import namedAny
from twisted.web import http, resource, server
from zope.interface import implementer

from hpxd.core import errors
from hpxd.core.interfaces import IDoor
from hpxd.core.metrics import DoorTraffic
from hpxd.doors import Listener, fire, waiter

IDLE_TIMEOUT = 60  # seconds an idle keep-alive HTTP connection is kept open
log = Logger()


def json_body(request, status, body):
    """Write ``body`` as the JSON answer with HTTP ``status``; returns the bytes."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body).encode("utf-8")


def json_error(request, error):
    """An error of the one table, as every HTTP door answers it."""
    return json_body(request, error.http_status, {"error": error.msg, "code": error.code})


class JsonResource(resource.Resource):
    """A leaf answering GET (and HEAD) with JSON; other methods get a JSON
    error naming the method instead of twisted.web's HTML page."""

    isLeaf = True

    def render(self, request):
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return json_error(request, errors.InvalidMessage(
                f"{request.path.decode('latin-1')} takes GET, not "
                f"{request.method.decode('latin-1')}"))
        return self.render_json(request)

    def render_json(self, request):
        raise NotImplementedError


class NoSuchPath(resource.Resource):
    isLeaf = True

    def render(self, request):
        return json_error(request, errors.FunctionNotFound(
            f"no such path {request.path.decode('latin-1')!r}"))


class PathTree(resource.Resource):
    """A resource tree whose every path no child claims answers a JSON 404."""

    def getChild(self, name, request):
        return NoSuchPath()

    def render(self, request):
        return NoSuchPath().render(request)


class Root(PathTree):
    """``/``: the console page; below it the web doors' resources by their
    first path segment. A WebSocket upgrade on ``/`` itself goes to
    ``websocket`` (``/ws``): an Igor client connects to the root path."""

    websocket = None

    def __init__(self):
        super().__init__()
        # Imported here: the console module imports this one.
        from hpxd.doors.web.console import ConsolePage
        self.putChild(b"", ConsolePage())  # "/" is the one empty segment

    def getChildWithDefault(self, name, request):
        if name == b"" and self.websocket is not None and _is_upgrade(request) \
                and not request.postpath:
            return self.websocket
        return super().getChildWithDefault(name, request)


class Channel(http.HTTPChannel):
    """An HTTP connection the site can close on shutdown."""

    def connectionMade(self):
        super().connectionMade()
        self.site.channels.add(self)

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.site.channel_lost(self)


class Request(server.Request):
    """A request whose body may not pass its site's ``max_body_bytes``.

    twisted.web keeps a whole body, however large (in a temporary file past
    100 kB). Here the bytes past the cap are read and dropped, never stored,
    and the site answers the request with a 410 and closes the connection
    (``WebSite.getResourceFor``)."""

    body_too_large = False
    body_received = 0

    def gotLength(self, length):
        if length is not None and length > self.channel.site.max_body_bytes:
            self.body_too_large = True
            length = 0  # nothing of it is kept
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self.body_too_large:
            return
        self.body_received += len(data)
        if self.body_received > self.channel.site.max_body_bytes:  # a chunked body
            self.body_too_large = True
            self.content.seek(0)
            self.content.truncate()  # what was kept goes too
            return
        super().handleContentChunk(data)


class BodyTooLarge(resource.Resource):
    isLeaf = True

    def render(self, request):
        site = request.channel.site
        limit = site.max_body_bytes
        peer = request.getClientAddress()
        log.info("refused a request body larger than {limit} bytes from {host}: {method} {path}",
                 limit=limit, host=getattr(peer, "host", peer),
                 method=request.method.decode("latin-1"), path=request.path.decode("latin-1"))
        request.setHeader(b"connection", b"close")
        # Close once the answer is out (finishing lets go of the channel).
        channel = request.channel
        request.notifyFinish().addBoth(lambda _: channel.loseConnection())
        return json_error(request, errors.ParsingError(
            f"request body larger than {limit} bytes ({site.max_body_bytes_why})"))


class WebSite(server.Site):
    protocol = Channel
    noisy = False

    def __init__(self, root, reactor, max_body_bytes, label="hpxd web door",
                 max_body_bytes_why="[web] max_body_bytes"):
        super().__init__(root, timeout=IDLE_TIMEOUT, reactor=reactor, requestFactory=Request)
        self.max_body_bytes = max_body_bytes
        self.max_body_bytes_why = max_body_bytes_why  # where the cap comes from, for the error
        self.label = label
        self.channels = set()
        self.inflight = 0
        self._drained = []
        self._closed = []

    def logPrefix(self):
        # Twisted announces each listening port as "<this> starting on <port>".
        return self.label

    def traffic(self):
        """Its open HTTP connections, for /metrics (an upgraded WebSocket
        leaves them: the WebSocket door counts its own)."""
        return DoorTraffic(len(self.channels))

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        channel.site = self
        return channel

    def getResourceFor(self, request):
        # Every request passes here once: count it until it is answered. A
        # WebSocket upgrade is not: it never finishes as an HTTP request.
        if request.body_too_large:
            return BodyTooLarge()  # answered at once, whatever the path
        if not _is_upgrade(request):
            self.inflight += 1
            request.notifyFinish().addBoth(self._finished)
        return super().getResourceFor(request)

    def upgraded(self, request):
        """``request``'s connection was taken over (a WebSocket): its
        resource closes it now, not this site."""
        self.channel_lost(request.channel)

    def log(self, request):
        """No access log line per request (a load balancer asks /readyz
        every few seconds); hpxd's own lines say what happened."""

    def _finished(self, _):
        self.inflight -= 1
        if not self.inflight:
            fire(self._drained)

    def channel_lost(self, channel):
        self.channels.discard(channel)
        if not self.channels:
            fire(self._closed)

    def drain(self):
        if not self.inflight:
            return defer.succeed(None)
        return waiter(self._drained)

    def close_all(self):
        """Close every connection; cancelling the Deferred aborts those left."""
        if not self.channels:
            return defer.succeed(None)
        d = waiter(self._closed, on_cancel=self._abort_all)
        for channel in list(self.channels):
            channel.transport.loseConnection()
        return d

    def _abort_all(self):
        for channel in list(self.channels):
            channel.transport.abortConnection()


def _is_upgrade(request):
    upgrade = request.requestHeaders.getRawHeaders(b"upgrade") or []
    return any(b"websocket" in value.lower() for value in upgrade)


def build_root(node, config, reactor):
    """``/`` with every registered web resource under its path segment."""
    from hpxd.doors import WEB_RESOURCES  # the registry, not another door
    root = Root()
    for segment, factory_path in WEB_RESOURCES.items():
        root.putChild(segment.encode("ascii"), namedAny(factory_path)(node, config, reactor))
    root.websocket = root.children.get(b"ws")
    if config.echo_path:  # for the Autobahn|Testsuite only (config checks it collides with none)
        from hpxd.doors.web.echo import Echo
        root.putChild(config.echo_path[1:].encode("ascii"), Echo(node, config, reactor))
    return root


@implementer(IDoor)
class WebDoor(Listener):
    """Listens on every ``[web] listen`` endpoint with one ``WebSite``."""

    name = "web"

    def __init__(self, node, config, reactor=None):
        super().__init__(config, reactor)
        self.site = self.factory = WebSite(build_root(node, config, self.reactor), self.reactor,
                                           config.max_body_bytes)
        node.dispatcher.metrics.doors[self.name] = self.site.traffic

    def drain(self):
        return _all([self.site.drain(), *(r.drain() for r in self._holders())])

    def close_connections(self, reason=None):
        return _all([self.site.close_all(),
                     *(r.close_connections(reason) for r in self._holders())])

    def _holders(self):
        """Resources with connections of their own (the WebSocket door)."""
        return [r for r in self.site.resource.children.values() if hasattr(r, "drain")]


def _all(deferreds):
    """One Deferred for several; cancelling it cancels each (dropping what is left)."""
    return defer.DeferredList(deferreds, consumeErrors=True)

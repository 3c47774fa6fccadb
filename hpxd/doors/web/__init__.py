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

from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.reflect import namedAny
from twisted.web import http, resource, server
from zope.interface import implementer

from hpxd.core import errors
from hpxd.core.interfaces import IDoor

IDLE_TIMEOUT = 60  # seconds an idle keep-alive HTTP connection is kept open


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


class Root(resource.Resource):
    """``/``: the web doors' resources by their first path segment."""

    def getChild(self, name, request):
        return NoSuchPath()

    def render(self, request):
        return NoSuchPath().render(request)


class Channel(http.HTTPChannel):
    """An HTTP connection the site can close on shutdown."""

    def connectionMade(self):
        super().connectionMade()
        self.site.channels.add(self)

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.site.channel_lost(self)


class WebSite(server.Site):
    protocol = Channel
    noisy = False

    def __init__(self, root, reactor):
        super().__init__(root, timeout=IDLE_TIMEOUT, reactor=reactor)
        self.channels = set()
        self.inflight = 0
        self._drained = []
        self._closed = []

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        channel.site = self
        return channel

    def getResourceFor(self, request):
        # Every request passes here once: count it until it is answered. A
        # WebSocket upgrade is not: it never finishes as an HTTP request.
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
            _fire(self._drained)

    def channel_lost(self, channel):
        self.channels.discard(channel)
        if not self.channels:
            _fire(self._closed)

    def drain(self):
        if not self.inflight:
            return defer.succeed(None)
        return _waiter(self._drained)

    def close_all(self):
        """Close every connection; cancelling the Deferred aborts those left."""
        if not self.channels:
            return defer.succeed(None)
        d = Deferred(self._abort_all)
        self._closed.append(d)
        for channel in list(self.channels):
            channel.transport.loseConnection()
        return d

    def _abort_all(self, d):
        if d in self._closed:
            self._closed.remove(d)
        for channel in list(self.channels):
            channel.transport.abortConnection()


def _is_upgrade(request):
    upgrade = request.requestHeaders.getRawHeaders(b"upgrade") or []
    return any(b"websocket" in value.lower() for value in upgrade)


def _waiter(waiting):
    d = Deferred(lambda d: waiting.remove(d) if d in waiting else None)
    waiting.append(d)
    return d


def _fire(waiting):
    ready = list(waiting)
    waiting.clear()
    for d in ready:
        d.callback(None)


def build_root(node, config, reactor):
    """``/`` with every registered web resource under its path segment."""
    from hpxd.doors import WEB_RESOURCES  # the registry, not another door
    root = Root()
    for segment, factory_path in WEB_RESOURCES.items():
        root.putChild(segment.encode("ascii"), namedAny(factory_path)(node, config, reactor))
    return root


@implementer(IDoor)
class WebDoor(service.Service):
    """Listens on every ``[web] listen`` endpoint with one ``WebSite``."""

    log = Logger()
    name = "web"

    def __init__(self, node, config, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.site = WebSite(build_root(node, config, reactor), reactor)
        self.ports = []

    def listen(self):
        return defer.ensureDeferred(self._listen())

    async def _listen(self):
        for description in self.config.listen:
            endpoint = endpoints.serverFromString(self.reactor, description)
            port = await endpoint.listen(self.site)
            self.ports.append(port)
            address = port.getHost()
            self.log.info("hpxd web door listening on {host}:{port}",
                          host=getattr(address, "host", address), port=getattr(address, "port", ""))

    def addresses(self):
        return [port.getHost() for port in self.ports]

    def stop_listening(self):
        ports, self.ports = self.ports, []
        return defer.DeferredList([defer.maybeDeferred(p.stopListening) for p in ports])

    def drain(self):
        return _all([self.site.drain(), *(r.drain() for r in self._holders())])

    def close_connections(self, reason=None):
        return _all([self.site.close_all(),
                     *(r.close_connections(reason) for r in self._holders())])

    def _holders(self):
        """Resources with connections of their own (the WebSocket door)."""
        return [r for r in self.site.resource.children.values() if hasattr(r, "drain")]

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        yield self.stop_listening()
        yield self.close_connections()


def _all(deferreds):
    """One Deferred for several; cancelling it cancels each (dropping what is left)."""
    return defer.DeferredList(deferreds, consumeErrors=True)

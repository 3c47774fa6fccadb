"""The web door: one twisted.web ``Site`` on every ``[web] listen`` endpoint.

Its resource tree is assembled from what each web resource module of this
package contributes, through ``hpxd.doors.WEB_RESOURCES`` (top-level path
segment -> resource factory), so a new one is added in that one place. A
path nobody claims answers a JSON 404. The JSON helpers here are what every
web resource answers with.
``WebDoor`` is the ``IDoor`` the service drives: it tracks HTTP connections
and requests in flight so the quit sequence can drain and close them.
"""

import io
import reprlib
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import quote, unquote_to_bytes

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.reflect import namedAny
from twisted.web import http, resource, server
from zope.interface import implementer

from hpxd.core import errors
from hpxd.core.doorkit import NOT_JSON, peer_text
from hpxd.core.interfaces import IDoor
from hpxd.core.jsonvalues import NOT_ENCODABLE, to_json
from hpxd.core.metrics import DoorTraffic
from hpxd.doors import Listener, fire, waiter

JSON_TYPE = b"application/json; charset=utf-8"  # every JSON reply of every HTTP door
IDLE_TIMEOUT = 60  # seconds an idle keep-alive HTTP connection is kept open
# Seconds a request body has to arrive whole, counted from the end of its
# headers (the idle timeout restarts with every byte, so a body trickling in
# would hold the connection for ever): at the default max_body_bytes (1 MiB)
# at least 35 kB/s.
BODY_TIMEOUT = 30
# An upload's body (a resource with ``takes_uploads``: up to [web]
# max_upload_bytes) has longer: as long as this many bytes a second take.
UPLOAD_MIN_RATE = 64 * 1024
log = Logger()


def json_body(request, status, body):
    """Write ``body`` as the JSON answer with HTTP ``status``; returns the bytes."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON_TYPE)
    request.setHeader(b"cache-control", b"no-store")
    return to_json(body).encode("utf-8")


def json_error(request, error):
    """An error of the one table, as every HTTP door answers it."""
    return json_body(request, error.http_status, {"error": error.msg, "code": error.code})


def json_answer(request, result):
    """A function's ``result`` as the 200 JSON answer; a value that is no
    JSON is our 500 (code 100, logged) instead."""
    try:
        return json_body(request, 200, result)
    except NOT_ENCODABLE as e:
        log.error("{method} {path}: the answer is no JSON ({why}): {value}",
                  method=request.method.decode("latin-1"), path=request.path.decode("latin-1"),
                  why=f"{type(e).__name__}: {e}", value=reprlib.repr(result))
        return json_error(request, errors.UnhandledError(NOT_JSON))


def json_later(request, d, answer_with=json_answer, error_with=json_error):
    """Answer ``request`` with what the Deferred ``d`` fires with, as JSON
    (200), or with its ``HpxdError``; anything else is our bug: logged, and
    answered 100. Nothing is written to a client that hung up meanwhile.
    ``answer_with(request, result)`` and ``error_with(request, error)``
    write the body (a resource answering in another shape passes its own).
    Returns NOT_DONE_YET, for ``render`` to return."""
    gone = []
    request.notifyFinish().addErrback(gone.append)

    def answer(result):
        if isinstance(result, Failure):
            if result.check(errors.HpxdError):
                error = result.value
            else:
                log.failure("{method} {path} failed", result,
                            method=request.method.decode("latin-1"),
                            path=request.path.decode("latin-1"))
                error = errors.UnhandledError()
            body = error_with(request, error)
        else:
            body = answer_with(request, result)
        if not gone:
            # As twisted.web does for a body returned at once: one write,
            # not chunked (a gzip encoder drops the header, as it must).
            request.setHeader(b"content-length", b"%d" % len(body))
            request.write(body)
            request.finish()

    d.addBoth(answer)
    return server.NOT_DONE_YET


# Request headers an app never sees in ``environ["headers"]``: the
# session's cookie and the /ext token are the door's business.
PRIVATE_HEADERS = frozenset({"cookie", "authorization"})


def request_environ(request, door, **more):
    """The read-only ``environ`` of a call made by a web request: ``door``,
    ``peer`` (host:port), ``headers`` (a read-only mapping, lower-case
    name -> value, repeated headers joined with ", ", without
    ``PRIVATE_HEADERS``) and ``more``."""
    return MappingProxyType({"door": door, "peer": peer_text(request.getClientAddress()),
                             "headers": RequestHeaders(request.requestHeaders), **more})


class RequestHeaders(Mapping):
    """A request's headers as ``environ["headers"]`` shows them, read from
    twisted.web's ``Headers`` the first time a function looks (most never do)."""

    __slots__ = ("_raw", "_headers")

    def __init__(self, raw):
        self._raw, self._headers = raw, None

    def _read(self):
        if self._headers is None:
            headers = {}
            for name, values in self._raw.getAllRawHeaders():
                name = name.decode("latin-1").lower()
                if name not in PRIVATE_HEADERS:
                    headers[name] = ", ".join(v.decode("latin-1") for v in values)
            self._headers, self._raw = headers, None
        return self._headers

    def __getitem__(self, name):
        return self._read()[name]

    def __iter__(self):
        return iter(self._read())

    def __len__(self):
        return len(self._read())

    def __repr__(self):
        return f"RequestHeaders({self._read()!r})"


READ_METHODS = (b"GET", b"HEAD")


def disposition(name, kind="attachment"):
    """``Content-Disposition`` naming ``name`` (``attachment``, or ``inline``
    as QFQ's downloads): an ASCII fallback and the exact name (RFC 6266
    ``filename*``)."""
    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "_" for ch in name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def wrong_method(request, allowed=READ_METHODS, error_with=json_error):
    """The JSON 405 answer (with ``Allow``) when ``request``'s method is not
    one of ``allowed``, else None. Every web resource refuses a method so
    (``error_with(request, error)`` writes it, for a resource answering
    errors in another shape)."""
    if request.method in allowed:
        return None
    request.setHeader(b"allow", b", ".join(allowed))
    return error_with(request, errors.MethodNotAllowed(
        f"{request.path.decode('latin-1')} takes {b' or '.join(allowed).decode('ascii')}, "
        f"not {request.method.decode('latin-1')}"))


class JsonResource(resource.Resource):
    """A leaf answering GET (and HEAD) with JSON; other methods get the
    JSON 405 (``wrong_method``) instead of twisted.web's HTML page."""

    isLeaf = True

    def render(self, request):
        refused = wrong_method(request)
        if refused is not None:
            return refused
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
    ``websocket`` (``/ws``): an Igor client connects to the root path.
    ``upload_segments``: the segments of resources that ``takes_uploads``."""

    websocket = None
    upload_segments = frozenset()

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

    line_in_hand = None  # see request_line (the adapter below)

    def lineReceived(self, line):
        self.line_in_hand = line
        try:
            super().lineReceived(line)
        finally:
            self.line_in_hand = None

    def connectionMade(self):
        super().connectionMade()
        self.site.channels.add(self)

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.site.channel_lost(self)


class Request(server.Request):
    """A request whose body must stay within its cap and arrive whole within
    its deadline.

    The cap is the site's ``max_body_bytes``, or, for a path under a
    resource that ``takes_uploads`` (``/upload``), ``max_upload_bytes``.
    twisted.web has no public way to give one path a bigger body cap than
    the site: the body is read before the resource is found, and the
    request does not know its path until the body is in. So the path is
    read from the request line as it arrives (``request_line``, the one
    adapter section below).

    twisted.web reads a whole body, however large (into a temporary file past
    100 kB) and however slowly, before anything answers it. Here the body is
    refused the moment it is known to break a rule: a declared Content-Length
    past the cap at once (and no ``100 Continue`` is sent for it), a chunked
    body when it passes the cap, any body at the deadline. Nothing of a
    refused body is kept; the site answers it with a 410 (``RefusedBody``)
    and the connection closes, the rest of the body unread.

    An upload's body, and any multipart/form-data body, is handed to its
    resource as ``form_body`` (a file, for it to parse with
    hpxd/doors/web/multipart_body.py), and twisted.web sees an empty ``content``:
    it would otherwise parse a multipart/form-data body whole,
    in memory, into ``request.args``."""

    refusal = None  # the HpxdError answered instead of the resource
    body_received = 0
    form_body = None  # an upload's or multipart body, taken from twisted.web (see above)
    _declared = 0  # the Content-Length, None for a chunked body
    _ending = None  # the delayed call that ends the body early

    def __init__(self, channel, *args, **kwargs):
        super().__init__(channel, *args, **kwargs)
        site = channel.site
        paths = getattr(site, "upload_segments", frozenset())
        self.takes_upload = bool(paths) and takes_upload(request_line(channel), paths)
        if self.takes_upload:
            self.body_cap, self.body_cap_why = site.max_upload_bytes, "[web] max_upload_bytes"
        else:
            self.body_cap, self.body_cap_why = site.max_body_bytes, site.max_body_bytes_why

    def gotLength(self, length):
        site = self.channel.site
        self._declared = length
        if length is not None and length > self.body_cap:
            # The channel answers "Expect: 100-continue" right after this:
            # a body that is refused is not asked for.
            self.requestHeaders.removeHeader(b"expect")
            self._refuse(self._too_large())
            length = 0  # nothing of it is kept
        elif length != 0:  # a body comes (None: chunked)
            self._ending = site.reactor.callLater(self.body_timeout(), self._late)
        super().gotLength(length)

    def body_timeout(self):
        """Seconds the body has to arrive in: the site's ``body_timeout``;
        for an upload, more if its size (declared, or else the cap) needs
        it at UPLOAD_MIN_RATE."""
        timeout = self.channel.site.body_timeout
        if self.takes_upload:
            expected = self.body_cap if self._declared is None else self._declared
            timeout = max(timeout, expected / UPLOAD_MIN_RATE)
        return timeout

    def handleContentChunk(self, data):
        if self.refusal is not None:
            return
        self.body_received += len(data)
        if self.body_received > self.body_cap:  # a chunked body
            self.content.seek(0)
            self.content.truncate()  # what was kept goes too
            self._refuse(self._too_large())
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        self._stop_ending()  # the body is in (or was ended)
        if self.refusal is None and (self.takes_upload or _is_multipart(self)):
            self.form_body = take_body(self)
        super().requestReceived(command, path, version)

    def connectionLost(self, reason):
        self._stop_ending()
        super().connectionLost(reason)

    def _too_large(self):
        return errors.ParsingError(
            f"request body larger than {self.body_cap} bytes ({self.body_cap_why})")

    def _refuse(self, error):
        """Answer ``error`` as soon as the parser is out of the way."""
        self.refusal = error
        close_after_answer(self.channel)
        self._stop_ending()
        self._ending = self.channel.site.reactor.callLater(0, self._end_body)

    def _late(self):
        got = (f"{self.body_received} bytes, chunked" if self._declared is None
               else f"{self.body_received} of {self._declared} bytes")
        self.refusal = errors.ParsingError(
            f"request body not received within {self.body_timeout():g} s ({got})")
        close_after_answer(self.channel)
        self._end_body()

    def _end_body(self):
        self._ending = None
        end_body_now(self.channel)

    def _stop_ending(self):
        if self._ending is not None and self._ending.active():
            self._ending.cancel()
        self._ending = None


def _is_multipart(request):
    kind = request.requestHeaders.getRawHeaders(b"content-type") or [b""]
    return kind[0].split(b";", 1)[0].strip().lower() == b"multipart/form-data"


def takes_upload(target, paths):
    """Whether the request-target ``target`` is at or below one of ``paths``
    (``b"upload"``, ``b"forms/api/file"``: unquoted, no leading slash)."""
    if not target:
        return False
    path = unquote_to_bytes(target.split(b"?", 1)[0][1:])
    return any(path == p or path.startswith(p + b"/") for p in paths)


# -- the one adapter over twisted.web's HTTPChannel -------------------------------
# twisted.web has no public way to answer a request before its body is in,
# nor to know a request's path before its body is in (to give one path a
# bigger body cap), nor to keep it from parsing a multipart/form-data body
# whole, in memory, for one path only (``parsePOSTFormSubmission`` is the
# whole site's, or fixed when the request is built, before its path is
# known). These four functions rely on what Twisted does not document:
# ``persistent`` and ``allContentReceived`` (the method its parser calls at
# the end of a body) of HTTPChannel; that HTTPChannel builds each request
# while it handles that request's line (its ``lineReceived``,
# LineReceiver's public method, which ``Channel`` watches); and that
# Request.requestReceived parses a form body from ``content``, the body's
# documented attribute. tests/test_unit_web_body.py
# (``test_the_http_channel_adapter_...``) fails when a Twisted release
# changes them.

def request_line(channel):
    """The request line (``b"POST /upload HTTP/1.1"``) of the request
    ``channel`` is building now: call it from the request's constructor.
    Its target (bytes), or None when unknown."""
    parts = (channel.line_in_hand or b"").split(b" ")
    return parts[1] if len(parts) == 3 else None


def take_body(request):
    """Take ``request``'s body (its file) from twisted.web, leaving it an
    empty ``content``: call it just before Request.requestReceived, which
    then parses no form out of it. Returns the body file, at its end."""
    body, request.content = request.content, io.BytesIO()
    return body


def close_after_answer(channel):
    """``channel`` reads no further request: it closes once the request it
    is reading now is answered, so the rest of a refused body is never
    parsed as another request."""
    channel.persistent = False


def end_body_now(channel):
    """``channel`` takes the body it is reading as complete, with what has
    arrived, and has its request answered now. Call it from the reactor,
    not from inside the channel's parser."""
    channel.allContentReceived()


class RefusedBody(resource.Resource):
    """The answer, whatever the path, to a request whose body was refused
    (``Request.refusal``); the connection closes after it."""

    isLeaf = True

    def render(self, request):
        peer = request.getClientAddress()
        log.info("refused the request body of {method} {path} from {host}: {why}",
                 method=request.method.decode("latin-1"), path=request.path.decode("latin-1"),
                 host=getattr(peer, "host", peer), why=request.refusal.msg)
        request.setHeader(b"connection", b"close")
        return json_error(request, request.refusal)


class WebSite(server.Site):
    protocol = Channel
    noisy = False

    def __init__(self, root, reactor, max_body_bytes, label="hpxd web door",
                 max_body_bytes_why="[web] max_body_bytes", max_upload_bytes=None,
                 upload_segments=frozenset()):
        super().__init__(root, timeout=IDLE_TIMEOUT, reactor=reactor, requestFactory=Request)
        self.max_body_bytes = max_body_bytes
        self.max_body_bytes_why = max_body_bytes_why  # where the cap comes from, for the error
        # Paths (bytes: a first segment, or a deeper path) whose requests, at
        # or below them, may bring bodies up to max_upload_bytes (resources
        # that ``takes_uploads``).
        self.max_upload_bytes = max_upload_bytes
        self.upload_segments = frozenset(upload_segments) if max_upload_bytes else frozenset()
        self.body_timeout = BODY_TIMEOUT
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
        if request.refusal is not None:
            return RefusedBody()  # whatever the path
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


class Gzipped(resource.EncodingResourceWrapper):
    """A resource whose answers are gzip-compressed for a client that
    accepts it (``Accept-Encoding: gzip``); others get them as they are."""

    def __init__(self, wrapped):
        super().__init__(wrapped, [server.GzipEncoderFactory()])
        self.wrapped = wrapped  # the WebDoor finds holders of connections (drain) in it


def build_root(node, config, reactor):
    """``/`` with every registered web resource under its path segment."""
    from hpxd.doors import WEB_RESOURCES  # the registry, not another door
    root = Root()
    uploads = set()
    for segment, factory_path in WEB_RESOURCES.items():
        made = namedAny(factory_path)(node, config, reactor)
        # Bodies up to [web] max_upload_bytes: every path of the resource
        # (takes_uploads = True), or only the sub-paths it names.
        paths = getattr(made, "takes_uploads", False)
        if paths is True:
            uploads.add(segment.encode("ascii"))
        elif paths:
            uploads.update(segment.encode("ascii") + b"/" + p for p in paths)
        # An upgrade is no body to compress; a file is sent as it is stored
        # (``gzip = False``: compressing a big download would hold the reactor).
        if segment != "ws" and getattr(made, "gzip", True):
            made = Gzipped(made)
        root.putChild(segment.encode("ascii"), made)
    root.upload_segments = frozenset(uploads)
    root.websocket = root.children.get(b"ws")
    if config.web.echo_path:  # for the Autobahn|Testsuite only (config checks it collides with none)
        from hpxd.doors.web.echo import Echo
        root.putChild(config.web.echo_path[1:].encode("ascii"), Echo(node, config, reactor))
    return root


@implementer(IDoor)
class WebDoor(Listener):
    """Listens on every ``[web] listen`` endpoint with one ``WebSite``."""

    name = "web"

    def __init__(self, node, config, reactor=None):
        super().__init__(config.web, reactor)
        root = build_root(node, config, self.reactor)
        self.site = self.factory = WebSite(root, self.reactor, config.web.max_body_bytes,
                                           max_upload_bytes=config.web.max_upload_bytes,
                                           upload_segments=root.upload_segments)
        node.dispatcher.metrics.doors[self.name] = self.site.traffic

    def drain(self):
        return _all([self.site.drain(), *(r.drain() for r in self._holders())])

    def close_connections(self, reason=None):
        return _all([self.site.close_all(),
                     *(r.close_connections(reason) for r in self._holders())])

    def _holders(self):
        """Resources with connections of their own (the WebSocket door)."""
        children = (getattr(r, "wrapped", r) for r in self.site.resource.children.values())
        return [r for r in children if hasattr(r, "drain")]


def _all(deferreds):
    """One Deferred for several; cancelling it cancels each (dropping what is left)."""
    return defer.DeferredList(deferreds, consumeErrors=True)

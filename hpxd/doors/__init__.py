"""The doors: each adapts one wire format to the core (docs/<door>.md).

``DOORS`` is the one registry the service builds doors from: a config
section name -> the import path of a factory ``(node, config, reactor)``
(``config``: the whole validated ``hpxd.config.Config``) returning an
``IDoor`` provider that is also a Twisted ``IService``. A door is built
when its section's ``listen`` list is not empty. The service
imports none of them by name, and no door imports another.
"""

from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.python.reflect import namedAny
from zope.interface.verify import verifyObject

from hpxd.core.interfaces import IDoor

DOORS = {
    "tcp": "hpxd.doors.tcp.TcpDoor",
    "web": "hpxd.doors.web.WebDoor",
    "metrics": "hpxd.doors.web.metrics.MetricsDoor",  # /metrics on a listener of its own
}

# The web door's resources: top-level path segment -> the import path of a
# factory ``(node, config, reactor)`` (the whole validated config: a resource
# may need [web], [sessions], [auth], data_dir...) returning a twisted.web
# resource.
# A web resource (/ws, /api, /ajax, /forms, /metrics ...) joins here.
WEB_RESOURCES = {
    "healthz": "hpxd.doors.web.health.Healthz",
    "readyz": "hpxd.doors.web.health.Readyz",
    "ws": "hpxd.doors.web.websocket.WebSocket",
    "session": "hpxd.doors.web.session.SessionResource",  # log in and out over HTTP
    "metrics": "hpxd.doors.web.metrics.metrics_resource",  # [web] metrics
    "static": "hpxd.doors.web.console.StaticFiles",    # [web] static_dir
    "console": "hpxd.doors.web.console.ConsoleFiles",  # the console page's own files
    "api": "hpxd.doors.web.jam.Api",  # Jam.py's jam.js (docs/http.md)
    "js": "hpxd.doors.web.jam.ClientModules",  # the client modules jam.js loads
    "upload": "hpxd.doors.web.files.Upload",      # POST a file (multipart) to an item
    "download": "hpxd.doors.web.files.Download",  # GET /download/<id>: a stored file
    "ajax": "hpxd.doors.web.ajax.AjaxResource",  # Heapkeeper-style calls
    "ext": "hpxd.doors.web.ext.ExtResource",  # other services -> @task.on_ext_request
    "forms": "hpxd.doors.web.forms_door.Forms",  # QFQ's forms: pages and /forms/api/ (docs/forms.md)
}


def build(node, config, reactor):
    """The doors that ``config`` switches on, in registry order."""
    doors = []
    for section_name, factory_path in DOORS.items():
        if not getattr(config, section_name).listen:
            continue
        door = namedAny(factory_path)(node, config, reactor)
        verifyObject(IDoor, door)
        doors.append(door)
    return doors


# -- what every door shares (this package is no door: doors may import it) ----

class Listener(service.Service):
    """The listening half of an ``IDoor``: every endpoint of its section's
    ``listen`` list, served by ``self.factory`` (set by the door)."""

    factory = None

    def __init__(self, config, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.ports = []

    def listen(self):
        return defer.ensureDeferred(self._listen())

    async def _listen(self):
        # Each port is announced once, by Twisted ("hpxd tcp door starting on
        # 7007": the factory's logPrefix), and the node's "ready" line names
        # every listener with its address.
        for index, description in enumerate(self.config.listen):
            endpoint = endpoints.serverFromString(self.reactor, description)
            try:
                self.ports.append(await endpoint.listen(self.factory))
            except Exception as e:
                # Twisted says "bind(): port must be 0-65535", or names an
                # address, and nothing more: name the door and its key.
                raise RuntimeError(f"the {self.name} door cannot listen on "
                                   f"{self.name}.listen[{index}] {description!r} ({e})") from None

    def addresses(self):
        return [port.getHost() for port in self.ports]

    def stop_listening(self):
        ports, self.ports = self.ports, []
        return defer.DeferredList([defer.maybeDeferred(p.stopListening) for p in ports])

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        yield self.stop_listening()
        yield self.close_connections()


def waiter(waiting, on_cancel=None):
    """A Deferred added to the list ``waiting``; cancelled, it leaves the
    list (and ``on_cancel()`` runs: a door drops what is left)."""
    def cancel(d):
        if d in waiting:
            waiting.remove(d)
        if on_cancel is not None:
            on_cancel()
    d = defer.Deferred(cancel)
    waiting.append(d)
    return d


def fire(waiting):
    """Fire (with None) and forget every Deferred of ``waiting``."""
    ready = list(waiting)
    waiting.clear()
    for d in ready:
        d.callback(None)


class Backpressure:
    """A connection's outgoing side, registered with its transport as a
    push producer: Twisted pauses it while the transport's buffer is full.
    What the door writes meanwhile is counted; past ``limit`` bytes,
    ``on_overflow(queued)`` runs (the door drops a client that does not read)."""

    def __init__(self, on_overflow, limit):
        self.on_overflow, self.limit = on_overflow, limit
        self.paused, self.queued = False, 0

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused, self.queued = False, 0

    def stopProducing(self):
        pass

    def wrote(self, size):
        """Call while ``paused`` (a check the door makes inline)."""
        self.queued += size
        if self.queued > self.limit:
            self.on_overflow(self.queued)

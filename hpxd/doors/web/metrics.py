"""``GET /metrics``: the node's metrics in the Prometheus text format, made
by prometheus_client from ``hpxd.core.metrics``.

On the web listener unless ``[web] metrics = false`` (``/metrics`` then
answers the JSON 404 of any unknown path); on a listener of its own when
``[metrics] listen`` names endpoints (``MetricsDoor``). The metric names:
docs/operations.md.
"""

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector,
                               generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from zope.interface import implementer

from hpxd.core.interfaces import IDoor
from hpxd.core.metrics import UNKNOWN_FUNCTION
from hpxd.doors import Listener
from hpxd.doors.web import JsonResource, NoSuchPath, PathTree, WebSite
from hpxd.doors.web.health import Healthz, Readyz


def metrics_resource(node, config, reactor):
    """The ``/metrics`` resource, or the unknown path's 404 when switched off."""
    if not config.web.metrics:
        return NoSuchPath()
    return MetricsPage(node)


class MetricsPage(JsonResource):
    """JsonResource for its method check (GET and HEAD); the body is text."""

    def __init__(self, node):
        super().__init__()
        self.node = node

    def render_json(self, request):
        # A registry per scrape: the web listener's live state goes in with
        # the node's collector, and nothing outlives the request. The
        # process collector reads a few small /proc files: no waiting.
        registry = CollectorRegistry(auto_describe=False)
        registry.register(NodeCollector(self.node))
        ProcessCollector(registry=registry)
        request.setResponseCode(200)
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return generate_latest(registry)


class NodeCollector:
    """A prometheus_client collector (``collect()`` yields metric families)
    over one node's ``Metrics`` and live state: each door reports its own
    traffic through ``Metrics.doors``."""

    def __init__(self, node):
        self.node = node
        self.metrics = node.dispatcher.metrics

    def collect(self):
        yield from self._calls()
        yield self._latency()
        yield from self._doors()
        yield from self._sessions()
        yield from self._backend()

    def _calls(self):
        calls = CounterMetricFamily("hpxd_calls", "Function calls, by door, function (a name "
                                    f"the app does not have: {UNKNOWN_FUNCTION}) and result "
                                    "(ok, or the error code).",
                                    labels=("door", "function", "code"))
        for (door, function, code), n in sorted(self.metrics.calls().items()):
            calls.add_metric((str(door), function, code), n)
        yield calls
        yield GaugeMetricFamily("hpxd_calls_in_flight", "Calls started and not yet finished.",
                                value=self.node.dispatcher.inflight)

    def _latency(self):
        family = HistogramMetricFamily(
            "hpxd_call_duration_seconds", f"Time from a call's start to its result, one call "
            f"in {self.metrics.sample_every} timed (the calls counters count every call).",
            labels=("door",))
        for door, latency in sorted(self.metrics.latency.items()):
            family.add_metric((str(door),), latency.cumulative(), latency.sum)
        return family

    def _traffic(self):
        return sorted((name, traffic()) for name, traffic in self.metrics.doors.items())

    def _doors(self):
        families = {
            "connections": GaugeMetricFamily("hpxd_connections", "Open connections, by door.",
                                             labels=("door",)),
            "bytes_in": CounterMetricFamily("hpxd_bytes_received", "Bytes read from clients, "
                                            "by door.", labels=("door",)),
            "bytes_out": CounterMetricFamily("hpxd_bytes_sent", "Bytes written to clients, "
                                             "by door.", labels=("door",)),
            "dropped_slow": CounterMetricFamily(
                "hpxd_slow_clients_dropped", "Clients dropped because they did not read "
                "what was sent to them (max_queued_bytes), by door.", labels=("door",)),
        }
        for name, traffic in self._traffic():
            for field, family in families.items():
                number = getattr(traffic, field)
                if number is not None:
                    family.add_metric((name,), number)
        return families.values()

    def _sessions(self):
        in_use = {c.session_id for c in self.node.hub.clients() if c.session_id is not None}
        yield GaugeMetricFamily("hpxd_sessions_connected", "Distinct sessions used by the "
                                "open connections of this node.", value=len(in_use))
        try:  # the memory store counts its sessions; Redis would need a scan of its keys
            stored = len(self.node.sessions)
        except TypeError:
            return
        yield GaugeMetricFamily("hpxd_sessions_stored", "Sessions held by this node's "
                                "session store (memory backend).", value=stored)

    def _backend(self):
        """What the backend's hub counts, when it offers ``counts()``
        (Redis: {hub_in, hub_out, round_trips, errors}); the memory backend
        has no other nodes and no round trips."""
        counts = getattr(self.node.hub, "counts", None)
        if counts is None:
            return
        counts = counts()
        hub = CounterMetricFamily("hpxd_hub_messages", "Hub messages to (out) and from (in) "
                                  "the other nodes, through Redis pub/sub.", labels=("direction",))
        hub.add_metric(("in",), counts["hub_in"])
        hub.add_metric(("out",), counts["hub_out"])
        yield hub
        yield CounterMetricFamily("hpxd_redis_round_trips", "Redis commands answered.",
                                  value=counts["round_trips"])
        yield CounterMetricFamily("hpxd_redis_errors", "Redis commands that failed (Redis away, "
                                  "no reply in time, an error reply).", value=counts["errors"])


@implementer(IDoor)
class MetricsDoor(Listener):
    """``[metrics] listen``: a listener of its own for Prometheus and the
    load balancer (an internal interface, say), serving ``/metrics``,
    ``/healthz`` and ``/readyz`` and nothing else."""

    name = "metrics"

    def __init__(self, node, config, reactor=None):
        super().__init__(config.metrics, reactor)
        root = PathTree()
        root.putChild(b"metrics", MetricsPage(node))
        root.putChild(b"healthz", Healthz(node, config, self.reactor))
        root.putChild(b"readyz", Readyz(node, config, self.reactor))
        # GET and HEAD only: a request with a body is refused.
        self.site = self.factory = WebSite(
            root, self.reactor, max_body_bytes=0, label="hpxd metrics door",
            max_body_bytes_why="the [metrics] listener takes no request body")

    def drain(self):
        return self.site.drain()

    def close_connections(self, reason=None):
        return self.site.close_all()

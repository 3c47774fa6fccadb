"""Implementations of the core's seams: ``memory`` (one process) and ``redis`` (many nodes).

``build(config, reactor)`` picks one from ``[backend] kind`` and returns a
``Backend``: the session store, scope and hub, plus the services that keep
them (purging, connections) for the service tree.
"""

from dataclasses import dataclass, field


@dataclass
class Backend:
    sessions: object
    scope: object
    hub: object
    services: list = field(default_factory=list)
    leases: object = None  # ILeases
    ready: object = None  # optional: a callable returning a Deferred, awaited at start
    is_ready: object = None  # optional: a callable, False while the backend cannot serve
    # Record locks and SIPs need no seam of their own: they live in ``leases``.


def build(config, reactor):
    if config.backend.kind == "redis":
        from hpxd.backends import redis
        return redis.build(config, reactor)
    from hpxd.backends import memory
    return memory.build(config, reactor)

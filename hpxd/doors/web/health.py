"""``/healthz`` and ``/readyz`` on the web listener: a load balancer's checks.

- ``GET /healthz``: live — answering at all means the reactor turns: 200.
- ``GET /readyz``: ready — 200 when every check of ``hpxd.core.health`` holds,
  503 otherwise (stopping, Redis away or not subscribed, database down), the
  checks in the body either way.
"""

from twisted.internet import defer
from twisted.web import server

from hpxd.core.health import readiness
from hpxd.doors.web import JsonResource, json_body


class Healthz(JsonResource):
    def __init__(self, node, config, reactor):
        super().__init__()

    def render_json(self, request):
        return json_body(request, 200, {"status": "live"})


class Readyz(JsonResource):
    def __init__(self, node, config, reactor):
        super().__init__()
        self.node, self.reactor = node, reactor

    def render_json(self, request):
        gone = []  # the client hung up before the checks were done
        request.notifyFinish().addErrback(gone.append)
        d = defer.ensureDeferred(readiness(self.node, self.reactor))
        d.addCallback(self._answer, request, gone)
        return server.NOT_DONE_YET

    @staticmethod
    def _answer(checks, request, gone):
        if gone:
            return
        ready = all(checks.values())
        request.write(json_body(request, 200 if ready else 503,
                                {"status": "ready" if ready else "not ready", "checks": checks}))
        request.finish()

"""The one Origin check of the web door.

A browser names the page that makes a request in its ``Origin`` header.
Every WebSocket upgrade (``/ws``, and ``/`` for Igor clients) and every
state-changing HTTP request (a POST, or a GET that changes state) passes
here: a request whose Origin is not in ``[web] allowed_origins`` is refused
with 403, so another site's page cannot act with a visitor's session cookie.

A request without an Origin is not a browser's cross-site request (browsers
send Origin on every WebSocket handshake and every POST) and passes; the
Origin ``null`` (a sandboxed frame, a file:// page) never does.

Patterns are matched as autobahn matched them before this module took over
the check, so configs keep their meaning: against ``scheme://host:port``
with the default port filled in, ``*`` matching anything
(``http://localhost:8080``, ``https://*.example.com:*``). An origin of
another scheme without a port (an Electron app's ``app://host``) is
matched as ``scheme://host``.
"""

import re
from urllib.parse import urlsplit

from hpxd.core import errors

DEFAULT_PORTS = {"http": 80, "https": 443}
SEEN_MAX = 1000  # Origin values whose answer is remembered


def _pattern(wildcard):
    return re.compile("^" + re.escape(wildcard).replace(r"\*", ".*") + "$")


def normalised(origin):
    """``scheme://host:port`` of an Origin header value; None when it names
    no origin a pattern can allow (``null``, file://, no host, junk)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme == "file":
        return None
    port = port or DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{parts.hostname}" + (f":{port}" if port else "")


class OriginCheck:
    """``[web] allowed_origins``, compiled once."""

    def __init__(self, allowed):
        self.allowed = list(allowed)
        self._patterns = [_pattern(wildcard) for wildcard in self.allowed]
        # Origin header -> the answer: a page sends the same Origin with
        # every request, and parsing it costs more than the rest of the
        # check. Bounded: past SEEN_MAX distinct values, no more are kept.
        self._seen = {}

    def allows(self, origin):
        try:
            return self._seen[origin]
        except KeyError:
            pass
        normal = normalised(origin)
        allowed = normal is not None and any(p.match(normal) for p in self._patterns)
        if len(self._seen) < SEEN_MAX:
            self._seen[origin] = allowed
        return allowed

    def refusal(self, request):
        """The error for a twisted.web ``request`` whose Origin is not
        allowed, or None when it may go on."""
        origins = request.requestHeaders.getRawHeaders(b"origin")
        if not origins:
            return None
        if len(origins) == 1:
            origin = origins[0].decode("latin-1")
            if self.allows(origin):
                return None
            why = f"requests from the origin {origin[:200]!r} are not allowed"
        else:
            why = "a request may carry one Origin header only"
        return errors.PermissionDenied(f"{why} (see [web] allowed_origins)")

"""The console page at ``/``, its own files under ``/console/``, and the
files of ``[web] static_dir`` under ``/static/`` (docs/console.md).

All three answer the JSON 404 for anything they do not serve (whatever the
method): directories are never listed, and no path leaves its root. What
they serve is read-only: GET and HEAD; anything else gets the JSON 405.

A static request is resolved here, whole, before any file is touched, in a
thread of the reactor's pool (``resolve`` stats every segment of the path:
a slow disk must not stop the reactor): every path segment is checked (no
empty, dot-led, ``/``, ``\\`` or NUL segment), the path is resolved with
``os.path.realpath`` (so symlinks are followed first) and must stay inside
the root's own real path (``os.path.commonpath``) and be a regular file.
Only then does twisted.web's ``static.File`` render that one file: it brings
HEAD, Range, If-Modified-Since and a producer that reads 64 KiB at a time as
the socket takes it, so a large file never blocks the reactor in one read
(its one stat and open of the checked file happen on the reactor). ``File``
is never used as a tree: its own child lookup refuses ``..`` but follows
symlinks out of its root, lists directories, and serves ``index.html`` or a
sibling by extension.
"""

import os
import re

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web import resource, server, static

from hpxd.doors.web import NoSuchPath, wrong_method

FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "console")
PAGE = os.path.join(FILES, "index.html")
CONSOLE_FILES = ("console.js", "console.css")  # what /console/ serves, nothing else
# The form door's client (hpxd/doors/web/forms_pages.py), served under
# /static/ whatever [web] static_dir holds: the form pages load it from there.
FORMS_FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "forms")
FORMS_CLIENT = ("hpxd-forms.js", "hpxd-forms.css")

# Browsers revalidate every time (If-Modified-Since, answered 304 by
# twisted.web while the file is unchanged): a new version shows at once.
CACHE_CONTROL = b"no-cache"

# The types that matter for a web page, with a charset for text; the rest
# from the system's mime.types (what twisted.web reads), else a download.
CONTENT_TYPES = {
    **static.File.contentTypes,
    ".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8",
    ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json", ".svg": "image/svg+xml", ".wasm": "application/wasm",
    ".png": "image/png", ".ico": "image/vnd.microsoft.icon", ".webp": "image/webp",
}
DEFAULT_TYPE = "application/octet-stream"

# The page's connect-src names the WebSocket URL of the Host it was asked
# for (older browsers do not let 'self' cover ws:); a Host that is not a
# plain host[:port] is left out rather than copied into the header.
_HOST = re.compile(rb"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")

log = Logger("hpxd.doors.web.console")


def content_security_policy(request):
    connect = b"'self'"
    host = request.getHeader(b"host") or b""
    if _HOST.fullmatch(host):
        connect += b" ws://" + host + b" wss://" + host
    return b"; ".join([
        b"default-src 'none'", b"script-src 'self'", b"style-src 'self'", b"img-src 'self'",
        b"connect-src " + connect, b"base-uri 'none'", b"form-action 'none'",
        b"frame-ancestors 'none'"])


def resolve(root, segments):
    """The real path of the file ``segments`` names under ``root`` (itself a
    real path), or None when it names none, or one outside ``root``.
    Blocking (it stats the path): run in a thread."""
    names = []
    for segment in segments:
        try:
            name = segment.decode("utf-8")  # twisted.web unquoted it once
        except UnicodeDecodeError:
            return None
        # "" is an absolute path or a directory; a leading dot also refuses
        # "." and ".." and hidden files (.git, .env); "/" came from %2f.
        if not name or name.startswith(".") or any(c in name for c in "/\\\x00"):
            return None
        names.append(name)
    if not names:
        return None
    real = os.path.realpath(os.path.join(root, *names))
    if os.path.commonpath([root, real]) != root or not os.path.isfile(real):
        return None
    return real


class Unreadable(NoSuchPath):
    """A file hpxd may not read is, to the client, not there."""

    def render(self, request):
        log.warn("static file for {path} is not readable by hpxd",
                 path=request.path.decode("latin-1"))
        return super().render(request)


class CheckedFile(static.File):
    """One regular file that ``resolve`` has checked (or one of the
    console's own), rendered by twisted.web for GET and HEAD.

    A leaf: ``File``'s own child lookup (symlinks, listings) is never used.
    """

    isLeaf = True
    contentTypes = CONTENT_TYPES
    contentEncodings = {}  # foo.gz is served as it is, not as Content-Encoding: gzip
    childNotFound = NoSuchPath()  # removed between the check and the open
    forbidden = Unreadable()

    def render(self, request):
        refused = wrong_method(request)
        if refused is not None:
            return refused
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", CACHE_CONTROL)
        return super().render(request)


def checked_file(path):
    return CheckedFile(path, defaultType=DEFAULT_TYPE)


class StaticFiles(resource.Resource):
    """``/static/<path>``: the form door's client (FORMS_CLIENT), and the
    files of ``[web] static_dir`` ("" = none)."""

    isLeaf = True

    def __init__(self, node, config, reactor):
        super().__init__()
        self.reactor = reactor
        # Resolved now, at start-up, before twistd changes directory.
        static_dir = config.web.static_dir
        self.root = os.path.realpath(static_dir) if static_dir else None
        if self.root is not None and not os.path.isdir(self.root):
            log.warn("[web] static_dir {root} is not a directory: /static/ serves nothing",
                     root=self.root)

    def render(self, request):
        name = request.postpath[0].decode("latin-1") if len(request.postpath) == 1 else None
        if name in FORMS_CLIENT:
            return checked_file(os.path.join(FORMS_FILES, name)).render(request)
        if self.root is None:
            return NoSuchPath().render(request)
        gone = []  # the client hung up before the lookup was done
        request.notifyFinish().addErrback(gone.append)
        d = deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                              resolve, self.root, tuple(request.postpath))
        d.addCallback(self._serve, request, gone)
        d.addErrback(self._failed, request, gone)
        return server.NOT_DONE_YET

    def _serve(self, path, request, gone):
        if gone:
            return
        # Request.render answers as twisted.web answers any resource (HEAD,
        # Content-Length, a render that returns NOT_DONE_YET).
        request.render(NoSuchPath() if path is None else checked_file(path))

    def _failed(self, failure, request, gone):
        if gone or request.finished:
            log.failure("serving static file {path} failed", failure,
                        path=request.path.decode("latin-1"))
        else:
            request.processingFailed(failure)  # logs it, answers 500: as a render that raised


class ConsoleFiles(resource.Resource):
    """``/console/<name>``: the console page's script and style sheet."""

    isLeaf = True

    def __init__(self, node, config, reactor):
        super().__init__()

    def render(self, request):
        name = request.postpath[0].decode("latin-1") if len(request.postpath) == 1 else None
        if name not in CONSOLE_FILES:
            return NoSuchPath().render(request)
        return checked_file(os.path.join(FILES, name)).render(request)


class ConsolePage(resource.Resource):
    """``/`` itself: the console page, under a strict Content-Security-Policy
    (scripts and styles from this server's files only, no inline ones, and
    connections only back to this server)."""

    def getChild(self, name, request):
        return NoSuchPath()  # "//" and below

    def render(self, request):
        request.setHeader(b"content-security-policy", content_security_policy(request))
        request.setHeader(b"referrer-policy", b"no-referrer")
        return checked_file(PAGE).render(request)

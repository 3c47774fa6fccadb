"""The console page at ``/``, its own files under ``/console/``, and the
files of ``[web] static_dir`` under ``/static/`` (docs/console.md).

All three are read-only (GET and HEAD; anything else gets a JSON 405) and
answer the JSON 404 for anything they do not serve: directories are never
listed, and no path leaves its root.

A static request is resolved here, whole, before any file is touched: every
path segment is checked (no empty, dot-led, ``/``, ``\\`` or NUL segment),
the path is resolved with ``os.path.realpath`` (so symlinks are followed
first) and must stay inside the root's own real path (``os.path.commonpath``)
and be a regular file. Only then does twisted.web's ``static.File`` render
that one file: it brings HEAD, Range, If-Modified-Since and a producer that
reads 64 KiB at a time as the socket takes it, so a large file never blocks
the reactor in one read. ``File`` is never used as a tree: its own child
lookup refuses ``..`` but follows symlinks out of its root, lists
directories, and serves ``index.html`` or a sibling by extension.
"""

import os
import re

from twisted.logger import Logger
from twisted.web import resource, static

from hpxd.core import errors
from hpxd.doors.web import NoSuchPath, json_body

FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "console")
PAGE = os.path.join(FILES, "index.html")
CONSOLE_FILES = ("console.js", "console.css")  # what /console/ serves, nothing else

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


def read_only(request):
    """The JSON 405 for anything but GET and HEAD, or None."""
    if request.method in (b"GET", b"HEAD"):
        return None
    request.setHeader(b"allow", b"GET, HEAD")
    error = errors.InvalidMessage(f"{request.path.decode('latin-1')} takes GET or HEAD, not "
                                  f"{request.method.decode('latin-1')}")
    return json_body(request, 405, {"error": error.msg, "code": error.code})


def resolve(root, segments):
    """The real path of the file ``segments`` names under ``root`` (itself a
    real path), or None when it names none, or one outside ``root``."""
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
    """One regular file that ``resolve`` has checked, rendered by twisted.web.

    A leaf: ``File``'s own child lookup (symlinks, listings) is never used.
    """

    isLeaf = True
    contentTypes = CONTENT_TYPES
    contentEncodings = {}  # foo.gz is served as it is, not as Content-Encoding: gzip
    childNotFound = NoSuchPath()  # removed between the check and the open
    forbidden = Unreadable()


def serve_file(request, path):
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"cache-control", CACHE_CONTROL)
    return CheckedFile(path, defaultType=DEFAULT_TYPE).render(request)


class StaticFiles(resource.Resource):
    """``/static/<path>``: the files of ``[web] static_dir`` ("" = none)."""

    isLeaf = True

    def __init__(self, node, config, reactor):
        super().__init__()
        # Resolved now, at start-up, before twistd changes directory.
        self.root = os.path.realpath(config.static_dir) if config.static_dir else None
        if self.root is not None and not os.path.isdir(self.root):
            log.warn("[web] static_dir {root} is not a directory: /static/ serves nothing",
                     root=self.root)

    def render(self, request):
        refused = read_only(request)
        if refused is not None:
            return refused
        # A few stat calls on the reactor thread, as twisted.web's File makes too.
        path = resolve(self.root, request.postpath) if self.root else None
        if path is None:
            return NoSuchPath().render(request)
        return serve_file(request, path)


class ConsoleFiles(resource.Resource):
    """``/console/<name>``: the console page's script and style sheet."""

    isLeaf = True

    def __init__(self, node, config, reactor):
        super().__init__()

    def render(self, request):
        refused = read_only(request)
        if refused is not None:
            return refused
        if len(request.postpath) != 1 or request.postpath[0].decode("latin-1") not in CONSOLE_FILES:
            return NoSuchPath().render(request)
        return serve_file(request, os.path.join(FILES, request.postpath[0].decode("latin-1")))


class ConsolePage(resource.Resource):
    """``/`` itself: the console page, under a strict Content-Security-Policy
    (scripts and styles from this server's files only, no inline ones, and
    connections only back to this server)."""

    def getChild(self, name, request):
        return NoSuchPath()  # "//" and below

    def render(self, request):
        refused = read_only(request)
        if refused is not None:
            return refused
        request.setHeader(b"content-security-policy", content_security_policy(request))
        request.setHeader(b"referrer-policy", b"no-referrer")
        return serve_file(request, PAGE)

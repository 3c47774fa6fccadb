"""Files: what reports return, and the core service every door asks for files.

``File(name, content_type, data)`` is a whole file in memory, as a report
function returns it (``hpxd.app.File``).

``Files`` (``node.files``) is the only way a door reaches the file store
(``IFileStore``; by default hpxd.core.file_store, in the records database,
shared by every node):

- ``upload(session, item, filename, content_type, source)``: the item's
  ``edit`` privilege, its extension allow-list (``item.uploads``) and the
  size cap (``[web] max_upload_bytes``, counted as the bytes go by); the
  client's file name is cleaned into metadata and never used as a path.
- ``download(session, file_id)``: ``view`` on the file's item, or, for a
  report's file, the session that asked for it, once: a ``Reader`` that
  gives the file a chunk at a time.
- ``print_report(session, item, name, kwargs, environ)``: runs the report
  through the dispatcher (its privilege, metrics, drain) and stores the
  ``File`` as a one-time download for this session; fires with its id.

docs/files.md is the guide.
"""

import os
import time
from dataclasses import dataclass

from twisted.logger import Logger

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.core.file_store import owner_of
from hpxd.core.record_ops import item_of

REPORT_LIFETIME = 3600  # seconds a report's file waits for its one download
SWEEP_EVERY = 60  # seconds between two sweeps of expired files (made by the next call)
MAX_NAME = 255  # characters of a client's file name kept
OCTET_STREAM = "application/octet-stream"
_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789!#$&^_.+-")

log = Logger()


@dataclass(frozen=True)
class File:
    name: str           # the name the client sees (metadata only, never a path)
    content_type: str   # e.g. "application/pdf"
    data: bytes

    def __post_init__(self):
        if not isinstance(self.name, str) or not isinstance(self.content_type, str):
            raise TypeError("File: name and content_type must be strings")
        if not isinstance(self.data, (bytes, bytearray)):
            raise TypeError("File: data must be bytes")


def safe_name(filename):
    """A client's file name as metadata: its last path component (``/`` or
    ``\\``), printable characters only, no leading dots or spaces, at most
    MAX_NAME characters (the extension kept); "file" when nothing is left."""
    text = filename if isinstance(filename, str) else ""
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if ch.isprintable()).strip().lstrip(". ")
    if len(text) > MAX_NAME:
        stem, ext = os.path.splitext(text)
        ext = ext[:16]
        text = stem[:MAX_NAME - len(ext)] + ext
    return text or "file"


def extension(name):
    """``.pdf`` of ``Report.PDF``; "" for a name without one."""
    return os.path.splitext(name)[1].lower()


def safe_content_type(content_type):
    """``type/subtype`` of a client's Content-Type (parameters dropped), or
    application/octet-stream when it is not one."""
    text = content_type.split(";")[0].strip().lower() if isinstance(content_type, str) else ""
    kind, slash, sub = text.partition("/")
    if slash and kind and sub and set(kind) <= _TOKEN and set(sub) <= _TOKEN:
        return text
    return OCTET_STREAM


def capped(source, limit, why="[web] max_upload_bytes"):
    """The pieces of ``source``, failing with 410 once more than ``limit``
    bytes went by."""
    total = 0
    for piece in source:
        total += len(piece)
        if total > limit:
            raise errors.ParsingError(f"the file is larger than {limit} bytes ({why})")
        yield piece


def describe(stored):
    """What an upload answers: ``{"id", "name", "size", "content_type"}``."""
    return {"id": stored.id, "name": stored.name, "size": stored.size,
            "content_type": stored.content_type}


class Reader:
    """One download: ``name``, ``content_type``, ``size``; ``read()`` fires
    with the next chunk's bytes, or None after the last; ``close()`` (always
    call it) drops a one-time file."""

    def __init__(self, store, stored):
        self.store, self.stored = store, stored
        self.name, self.content_type, self.size = stored.name, stored.content_type, stored.size
        self._next = 0
        self._closed = False

    @deferred
    async def read(self):
        if self._next >= self.stored.chunks:
            return None
        data = await self.store.read(self.stored.id, self._next)
        if data is None:
            raise errors.FunctionNotFound("the file was deleted while it was downloading")
        self._next += 1
        return bytes(data)

    @deferred
    async def close(self):
        if self._closed:
            return
        self._closed = True
        if self.stored.one_time:
            await self.store.delete(self.stored.id)


class Files:
    """The node's files (``node.files``): see the module's text."""

    def __init__(self, node, store, max_upload_bytes, clock=time.time):
        self.node = node
        self.store = store
        self.max_upload_bytes = max_upload_bytes
        self.clock = clock
        self._swept = None  # when the last sweep of expired files ran

    def prepare(self):
        """Create the store's tables (the service does, at start)."""
        return self.store.prepare()

    # -- uploads ---------------------------------------------------------------------

    @deferred
    async def upload(self, session, item, filename, content_type, source):
        """Store the bytes of the iterable ``source`` (read in a worker thread,
        a piece at a time) as a file of ``item``; fires with
        ``{"id", "name", "size", "content_type"}``."""
        if not self.node.dispatcher.accepting:
            raise errors.ShuttingDown()
        found = item_of(self.node, item)
        self._authorise(session, found, "edit", "upload to")
        allowed = found.upload_extensions
        label = found.path or found.name
        if allowed is None:
            raise errors.BadArguments(f"item {label!r} takes no uploads")
        name = safe_name(filename)
        if extension(name) not in allowed:
            raise errors.BadArguments(
                f"item {label!r} takes files ending in {', '.join(sorted(allowed))}, "
                f"not {name!r}")
        await self._sweep()
        stored = await self.store.put(name, safe_content_type(content_type), found.path,
                                      capped(source, self.max_upload_bytes))
        log.info("{user} uploaded {name!r} ({size} bytes) to {item!r} as file {id}",
                 user=session.user_name or "a guest", name=name, size=stored.size,
                 item=label, id=stored.id)
        return describe(stored)

    # -- downloads -------------------------------------------------------------------

    @deferred
    async def download(self, session, file_id):
        """A ``Reader`` of file ``file_id`` for ``session``: 404 when there is
        no such file (or a report's file was fetched already), 406 without
        view on its item (or for a report's file, from another session)."""
        stored = await self.store.get(file_id)
        if stored is None:
            raise errors.FunctionNotFound("no such file (a report's file downloads once)")
        if stored.one_time:
            if stored.owner != owner_of(session.id):
                raise errors.PermissionDenied("this file was made for another session")
            if not await self.store.claim(stored.id, stored.owner):
                raise errors.FunctionNotFound("no such file (a report's file downloads once)")
        else:
            found = self.node.task.item_by_name(stored.item)
            if found is None:  # the app no longer has the item: nobody's privilege covers it
                raise errors.FunctionNotFound(f"no such file (its item {stored.item!r} is gone)")
            self._authorise(session, found, "view", "download from")
        return Reader(self.store, stored)

    @deferred
    async def item_path(self, file_id):
        """The dotted path of the item an uploaded file belongs to, or None
        when there is no such file (or it is a report's one-time file)."""
        stored = await self.store.get(file_id)
        return None if stored is None or stored.one_time else stored.item

    # -- reports ---------------------------------------------------------------------

    @deferred
    async def print_report(self, session, item, name, kwargs=None, environ=None):
        """Run report ``name`` of ``item`` for ``session`` (``kwargs``: an
        object of keyword arguments, or a list of positional ones) and keep
        its file for one download by this session; fires with the file's id
        (a door answers ``download/<id>``). A transient guest session is
        stored first, so the door's ``keep_session`` gives it its cookie."""
        found = item_of(self.node, item)
        made = await self.node.dispatcher.report(session, found, name, kwargs, environ)
        if session.transient:
            await self.node.sessions.add(session)
            session.transient = False
        await self._sweep()
        stored = await self.store.put(safe_name(made.name), safe_content_type(made.content_type),
                                      found.path, [made.data], owner=owner_of(session.id),
                                      lifetime=REPORT_LIFETIME)
        return stored.id

    # -- deleting --------------------------------------------------------------------

    @deferred
    async def delete(self, session, file_id):
        """Delete an uploaded file: ``delete`` on its item. True if it was there."""
        stored = await self.store.get(file_id)
        if stored is None or stored.one_time:
            return False
        found = self.node.task.item_by_name(stored.item)
        if found is None:
            raise errors.FunctionNotFound(f"no such file (its item {stored.item!r} is gone)")
        self._authorise(session, found, "delete", "delete files of")
        return await self.store.delete(stored.id)

    # -- helpers ---------------------------------------------------------------------

    def _authorise(self, session, item, privilege, what):
        if not self.node.auth.can(session.user_info, item.privilege_key, privilege):
            raise errors.PermissionDenied(f"your role {session.role!r} lacks {privilege!r} on "
                                          f"{item.privilege_key!r} to {what} it")

    async def _sweep(self):
        """Drop expired files, at most once every SWEEP_EVERY seconds (the
        calls that store files run it: no timer of its own)."""
        now = self.clock()
        if self._swept is not None and now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        try:
            dropped = await self.store.drop_expired(now)
        except Exception as e:  # the next sweep tries again; the call goes on
            log.warn("could not drop expired files: {e}", e=e)
            return
        if dropped:
            log.info("dropped {n} expired file(s)", n=dropped)


"""``POST /upload`` and ``GET /download/<id>``: files over HTTP (docs/http.md).

- ``POST /upload``: a multipart/form-data body with the field ``file`` and
  the field ``item`` (an item id or dotted path; before ``file``, or in the
  query string: ``/upload?item=docs``). Answers ``{"id", "name", "size",
  "content_type"}``. The body may be up to ``[web] max_upload_bytes``
  (``takes_uploads``: the web door's Request refuses a larger one while it
  arrives), kept by twisted.web in a temporary file, never in memory; it
  is parsed here a piece at a time (PyPI ``multipart``'s push parser) in
  worker threads, and the file's bytes go straight to ``node.files``.
  The Origin check of every state-changing request applies.
- ``GET /download/<id>``: the file, streamed a chunk at a time (a push
  producer: nothing more is read while the client does not keep up), as an
  attachment with its stored content type; ``view`` on its item, or a
  report's file, once, for the session that made it.

The privileges, the extension allow-list, the size cap and where files
live are the core's (``node.files``, hpxd.core.files): this module only
speaks HTTP.
"""

from twisted.internet import defer, threads
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import resource, server
from zope.interface import implementer

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.doors.web import NoSuchPath, disposition, json_error, json_later, wrong_method
from hpxd.doors.web.cookies import keep_session, session_of
from hpxd.doors.web.multipart_body import MultipartForm, boundary_of
from hpxd.doors.web.origin import OriginCheck

FILE_FIELD, ITEM_FIELD = "file", "item"
log = Logger()


def _bare(request):
    return request.postpath in ([], [b""])


# -- POST /upload -------------------------------------------------------------------

def item_named(text):
    """An item id (digits) or dotted path, as the core's item_of takes it."""
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 10 else text


class Upload(resource.Resource):
    isLeaf = True
    takes_uploads = True  # the web door lets its bodies grow to [web] max_upload_bytes

    def __init__(self, node, config, reactor):
        super().__init__()
        self.node = node
        self.origins = OriginCheck(config.web.allowed_origins)

    def render(self, request):
        body = request.form_body if request.form_body is not None else request.content
        refused = self._refusal(request)
        if refused is not None:
            body.close()
            return refused
        d = self._upload(request, body)
        d.addBoth(_closed, body)
        return json_later(request, d)

    def _refusal(self, request):
        refused = wrong_method(request, (b"POST",))
        if refused is None and not _bare(request):
            refused = NoSuchPath().render(request)
        if refused is None:
            foreign = self.origins.refusal(request)
            refused = None if foreign is None else json_error(request, foreign)
        return refused

    @deferred
    async def _upload(self, request, body):
        boundary = boundary_of(request, "POST /upload takes multipart/form-data (the file in "
                                         "the field 'file')")
        session = await session_of(request, self.node)
        form = MultipartForm(body, boundary)
        fields, part = await threads.deferToThread(form.fields_and_file, FILE_FIELD)
        named = request.args.get(ITEM_FIELD.encode())
        item = named[0].decode("utf-8", "replace") if named else fields.get(ITEM_FIELD)
        if item is None:
            raise errors.BadArguments("name the item the file is for: the field 'item' "
                                      "(before 'file'), or /upload?item=...")
        result = await self.node.files.upload(session, item_named(item), part.filename,
                                              part.content_type, form.file_data())
        keep_session(request, session)
        return result


def _closed(result, body):
    body.close()
    return result


# -- GET /download/<id> -------------------------------------------------------------

@implementer(IPushProducer)
class Pump:
    """Paces a download to its client: while the transport is full,
    ``paused`` is a Deferred the sender waits on; ``stopped`` once the
    client has gone; ``sent`` once the file's first bytes went out."""

    def __init__(self):
        self.paused = None
        self.stopped = False
        self.sent = False

    def pauseProducing(self):
        if self.paused is None:
            self.paused = defer.Deferred()

    def resumeProducing(self):
        waiting, self.paused = self.paused, None
        if waiting is not None:
            waiting.callback(None)

    def stopProducing(self):
        self.stopped = True
        self.resumeProducing()


class Download(resource.Resource):
    isLeaf = True
    gzip = False  # files go out as they are stored

    def __init__(self, node, config, reactor):
        super().__init__()
        self.node = node

    def render(self, request):
        refused = wrong_method(request, (b"GET",))  # no HEAD: it would use up a report's file
        if refused is not None:
            return refused
        if len(request.postpath) != 1 or not request.postpath[0]:
            return NoSuchPath().render(request)
        pump = Pump()
        request.notifyFinish().addErrback(lambda _: pump.stopProducing())  # the client went
        file_id = request.postpath[0].decode("latin-1")
        self._send(request, file_id, pump).addErrback(self._failed, request, pump)
        return server.NOT_DONE_YET

    @deferred
    async def _send(self, request, file_id, pump):
        session = await session_of(request, self.node)
        reader = await self.node.files.download(session, file_id)
        try:
            request.setHeader(b"content-type", reader.content_type.encode("ascii"))
            request.setHeader(b"content-length", str(reader.size).encode("ascii"))
            request.setHeader(b"content-disposition", disposition(reader.name).encode("ascii"))
            request.setHeader(b"x-content-type-options", b"nosniff")
            request.setHeader(b"content-security-policy", b"sandbox")
            request.setHeader(b"cache-control", b"no-store")
            await _stream(request, reader, pump)
        finally:
            await reader.close()

    def _failed(self, failure, request, pump):
        """Before the file's first byte, an error answer; after it, the
        connection is cut (the client sees a short body, never a wrong one)."""
        path = request.path.decode("latin-1")
        if pump.stopped:
            return
        if pump.sent:
            log.warn("download {path} cut short: {error}", path=path,
                     error=failure.getErrorMessage())
            request.loseConnection()
            return
        if failure.check(errors.HpxdError):
            error = failure.value
        else:
            log.failure("download {path} failed", failure, path=path)
            error = errors.UnhandledError()
        request.responseHeaders.removeHeader(b"content-disposition")
        request.responseHeaders.removeHeader(b"content-length")
        request.write(json_error(request, error))
        request.finish()


async def _stream(request, reader, pump):
    """Write ``reader``'s chunks to ``request`` as fast as its client takes them."""
    request.registerProducer(pump, True)
    try:
        while not pump.stopped:
            data = await reader.read()
            if data is None:
                break
            pump.sent = True
            request.write(data)
            if pump.paused is not None:
                await pump.paused
    finally:
        request.unregisterProducer()
    if not pump.stopped:
        request.finish()

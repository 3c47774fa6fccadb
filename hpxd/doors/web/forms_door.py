"""``/forms``: the form door, QFQ's client-server protocol over HTTP (docs/forms.md).

- ``GET /forms/<form>[?r=<id>]``: the form as an HTML page (the record's
  values, a SIP in the hidden field ``s``, ``recordHashMd5``, ``tabUniqId``,
  the client script ``/static/hpxd-forms.js``); ``GET /forms/<table view>``:
  a table view of a form's records.
- ``/forms/api/<endpoint>`` (``.php`` too, as QFQ spells them): ``load``,
  ``save``, ``delete``, ``file`` (POST) and ``download``, ``typeahead``,
  ``dirty``, ``dragAndDrop`` (GET, or POST). Parameters come from the query
  string and a urlencoded or multipart body (``s`` or, for typeahead,
  ``sip``: the SIP). Every answer is JSON with QFQ's Minimal Response
  (``status``, ``message``) and what the endpoint adds; a refusal is
  ``{"status": "error", "message", "code"}`` with the error's HTTP status,
  a validation failure or a lock conflict an answer (200).

Everything a form does is the core's (``node.forms``,
hpxd.core.form_service): this module parses requests and writes answers.
A SIP is a secret of the page that got it, bound to its session, so it is
the CSRF token of the GET endpoints too; every POST passes the Origin check.
"""

from urllib.parse import parse_qsl

from twisted.internet import threads
from twisted.logger import Logger
from twisted.web import resource

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.core.files import File
from hpxd.core.jsonvalues import load_json
from hpxd.doors.web import (Gzipped, disposition, json_answer, json_body, json_later,
                             wrong_method)
from hpxd.doors.web.cookies import keep_session, session_of
from hpxd.doors.web.forms_pages import content_security_policy, error_page, render_page
from hpxd.doors.web.multipart_body import MultipartForm, boundary_of
from hpxd.doors.web.origin import OriginCheck
from hpxd.doors.web.params import URLENCODED, content_type, raw_fields, text_params

DOOR = "forms"
FILE_FIELD = "file"  # the part of a file.php upload holding the file
MAX_PARAMS = 200  # parameters of one request
MAX_SMALL_BODY = 64 * 1024  # bytes of a file.php delete's body (its path takes uploads)
GET_OR_POST = (b"GET", b"POST")
POST = (b"POST",)
log = Logger()


# -- answers ------------------------------------------------------------------------

def error_reply(request, error):
    """An error of the one table as QFQ's error Minimal Response; logged
    (a refusal the operator may want to see)."""
    log.info("{method} {path} refused: {code} {message}",
             method=request.method.decode("latin-1"), path=request.path.decode("latin-1")[:200],
             code=error.code, message=error.msg[:300])
    return json_body(request, error.http_status,
                     {"status": "error", "message": error.msg, "code": error.code})


# -- parameters ---------------------------------------------------------------------

def params_of(request, fields=None):
    """The request's parameters as ``{name: text}``; a name given twice,
    text that is not UTF-8, or too many parameters are refused."""
    fields = raw_fields(request) if fields is None else fields
    if len(fields) > MAX_PARAMS:
        raise errors.BadArguments(f"more than {MAX_PARAMS} parameters")
    return text_params(fields)


def query_params(request):
    """The query string's parameters only (a file.php or JSON body is not read)."""
    return params_of(request, [(n, v) for n, values in request.args.items() for v in values]
                     if request.method == b"GET" else _query_fields(request))


def _query_fields(request):
    query = request.uri.partition(b"?")[2]
    return parse_qsl(query, keep_blank_values=True)


# Parameters of a form's body that are the protocol's, not the form's fields.
META = ("s", "r", "recordHashMd5", "tabUniqId", "submit_reason")


def form_values(params):
    return {name: value for name, value in params.items() if name not in META}


def optional(params, name):
    value = params.get(name)
    return value if value else None


# -- the endpoints ------------------------------------------------------------------

class Endpoints:
    """Each endpoint: ``(request, session) -> a Deferred of its answer``."""

    def __init__(self, node):
        self.forms = node.forms

    def load(self, request, session):
        params = params_of(request)
        return self.forms.load(session, params.get("s"), form_values(params),
                               optional(params, "r"))

    def save(self, request, session):
        if content_type(request) == b"application/json":  # Tablesorter's "save view"
            params = query_params(request)
            return self.forms.save_view(session, params.get("s"), json_request_body(request))
        params = params_of(request)
        return self.forms.save(session, params.get("s"), form_values(params),
                               params.get("submit_reason", "save"),
                               optional(params, "recordHashMd5"),
                               optional(params, "tabUniqId"), optional(params, "r"))

    def delete(self, request, session):
        params = params_of(request)
        return self.forms.delete(session, params.get("s"), optional(params, "r"),
                                 optional(params, "tabUniqId"))

    def dirty(self, request, session):
        params = params_of(request)
        return self.forms.dirty(session, params.get("s"), params.get("action"),
                                optional(params, "recordHashMd5"),
                                optional(params, "tabUniqId"), optional(params, "r"))

    def typeahead(self, request, session):
        params = params_of(request)
        token = params.get("sip") or params.get("s")  # QFQ's typeahead names it sip
        return self.forms.typeahead(session, token, params.get("query", ""))

    def dragAndDrop(self, request, session):
        params = params_of(request)
        return self.forms.drag_and_drop(session, params.get("s"), params.get("dragId"),
                                        params.get("setTo"), params.get("hoverId"))

    def file(self, request, session):
        action = query_params(request).get("action")
        if action == "upload":
            return self._upload(request, session)
        if action == "delete":
            params = small_form_body(request)
            return self.forms.delete_file(session, params.get("s"), params.get("name"),
                                          optional(params, "value"))
        raise errors.BadArguments("file takes action=upload or action=delete")

    @deferred
    async def _upload(self, request, session):
        body = request.form_body if request.form_body is not None else request.content
        form = MultipartForm(body, boundary_of(
            request, "an upload is multipart/form-data (s, name, then the file in 'file')"))
        fields, part = await threads.deferToThread(form.fields_and_file, FILE_FIELD)
        fields.update(query_params(request))
        return await self.forms.upload(session, fields.get("s"), fields.get("name"),
                                       part.filename, part.content_type, form.file_data())

    def download(self, request, session):
        params = params_of(request)
        return self.forms.download(session, params.pop("s", None),
                                   {k: v for k, v in params.items() if k != "r"})


def json_request_body(request):
    request.content.seek(0)
    try:
        return load_json(request.content.read().decode("utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise errors.JSONParseError(f"the body is not JSON ({str(e)[:200]})") from None


def small_form_body(request):
    """A urlencoded body on a path that takes uploads (so the web door kept
    it from twisted.web as ``form_body``), plus the query string."""
    body = request.form_body
    fields = list(_query_fields(request))
    if body is not None:
        if content_type(request) not in (URLENCODED, b""):
            raise errors.BadArguments("a file delete's body is application/x-www-form-urlencoded")
        body.seek(0)
        data = body.read(MAX_SMALL_BODY + 1)
        if len(data) > MAX_SMALL_BODY:
            raise errors.BadArguments("a file delete's body is too large")
        fields += parse_qsl(data, keep_blank_values=True)
    return params_of(request, fields)  # (bytes pairs: parse_qsl of bytes)


ENDPOINTS = {  # name -> methods
    "load": POST, "save": POST, "delete": POST, "file": POST,
    "download": GET_OR_POST, "typeahead": GET_OR_POST, "dirty": GET_OR_POST,
    "dragAndDrop": GET_OR_POST,
}


class Endpoint(resource.Resource):
    """``/forms/api/<name>`` (and ``<name>.php``)."""

    isLeaf = True

    def __init__(self, node, origins, name, methods, run):
        super().__init__()
        self.node, self.origins, self.name = node, origins, name
        self.methods, self.run = methods, run

    def render(self, request):
        if request.postpath not in ([], [b""]):
            return error_reply(request, errors.FunctionNotFound(
                f"no such path {request.path.decode('latin-1')[:200]!r}"))
        refused = wrong_method(request, self.methods, error_reply)
        if refused is not None:
            return refused
        foreign = self.origins.refusal(request)
        if foreign is not None:
            return error_reply(request, foreign)
        return json_later(request, self._answer(request), self.write, error_reply)

    @deferred
    async def _answer(self, request):
        session = await session_of(request, self.node)
        try:
            return await self.run(request, session)
        finally:
            keep_session(request, session)

    def write(self, request, result):
        return json_answer(request, result)


class DownloadEndpoint(Endpoint):
    """``download``: the file as QFQ sends it, or (json output) JSON."""

    def write(self, request, result):
        if not isinstance(result, File):
            return json_answer(request, result)
        request.setHeader(b"content-type", result.content_type.encode("ascii", "replace"))
        request.setHeader(b"content-disposition",
                          disposition(result.name, "inline").encode("ascii"))
        request.setHeader(b"pragma", b"no-cache")
        request.setHeader(b"expires", b"0")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy", b"sandbox")
        return bytes(result.data)


# -- /forms/<name>: the pages -------------------------------------------------------

class Page(resource.Resource):
    """``GET /forms/<form or table view>``: the HTML page."""

    isLeaf = True

    def __init__(self, node):
        super().__init__()
        self.node = node

    def render(self, request):
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return self._html(request, 405, error_page("this page takes GET"))
        name = request.prepath[-1].decode("utf-8", "replace")
        if request.postpath not in ([], [b""]):
            return self._html(request, 404, error_page(f"no page {request.path!r}"))
        return json_later(request, self._page(request, name), self._write, self._error)

    @deferred
    async def _page(self, request, name):
        session = await session_of(request, self.node)
        try:
            if self.node.task.form_by_name(name) is not None:
                record_id = query_params(request).get("r") or None
                return await self.node.forms.open_form(session, name, record_id)
            return await self.node.forms.open_view(session, name)
        finally:
            keep_session(request, session)

    def _write(self, request, page):
        return self._html(request, 200, render_page(page))

    def _error(self, request, error):
        return self._html(request, error.http_status,
                          error_page(f"{error.msg} (code {error.code})"))

    def _html(self, request, status, text):
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-security-policy", content_security_policy())
        request.setHeader(b"referrer-policy", b"same-origin")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return text.encode("utf-8")


class NotAnEndpoint(resource.Resource):
    """A path under /forms/api/ that is no endpoint: a Minimal Response 404."""

    isLeaf = True

    def render(self, request):
        return error_reply(request, errors.FunctionNotFound(
            f"no such path {request.path.decode('latin-1')[:200]!r} (the endpoints: "
            f"{', '.join(ENDPOINTS)})"))


class Api(resource.Resource):
    def getChild(self, name, request):
        return NotAnEndpoint()

    def render(self, request):
        return NotAnEndpoint().render(request)


class Forms(resource.Resource):
    """``/forms``: ``api/<endpoint>`` and the pages."""

    gzip = False  # each child is wrapped below; a download goes out as it is
    takes_uploads = (b"api/file", b"api/file.php")  # bodies up to [web] max_upload_bytes

    def __init__(self, node, config, reactor):
        super().__init__()
        origins = OriginCheck(config.web.allowed_origins)
        endpoints = Endpoints(node)
        api = Api()
        for name, methods in ENDPOINTS.items():
            kind = DownloadEndpoint if name == "download" else Endpoint
            leaf = kind(node, origins, name, methods, getattr(endpoints, name))
            if name != "download":
                leaf = Gzipped(leaf)
            api.putChild(name.encode(), leaf)
            api.putChild(name.encode() + b".php", leaf)
        self.putChild(b"api", api)
        self.page = Gzipped(Page(node))

    def getChild(self, name, request):
        return self.page

    def render(self, request):
        return error_reply(request, errors.FunctionNotFound("no such path '/forms': "
                                                            "/forms/<form> is a form"))


"""``/ajax/<function>``: Heapkeeper's way of calling the server (docs/http.md).

``<function>`` is any exposed function by its dotted name (``add``,
``catalog.test``), so one function serves every door. Its keyword
arguments are the request's parameters, from the query string and from a
urlencoded or multipart body: a value that starts with ``\\x00`` (``%00``)
is JSON (Heapkeeper's client sends every value as ``'\\x00' +
JSON.stringify(value)``), any other value is the string itself. A
parameter given twice is refused (Heapkeeper's server kept one of them
silently). The answer is the function's value itself as JSON, with no
wrapper; an error is ``{"error", "code"}`` with the error's HTTP status.

POST always (the Origin check first); GET (and HEAD) only for functions
declared ``get=True``, else 405 with ``Allow: POST``. Every request passes
the Origin check when it has an ``Origin``. The session is the cookie's,
or a transient guest's that a function giving it data stores (and the
answer sets the cookie).
"""

from urllib.parse import parse_qs

from twisted.internet import defer
from twisted.web import resource

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.core.jsonvalues import load_json
from hpxd.doors.web import (json_answer, json_error, json_later, request_environ,
                             wrong_method)
from hpxd.doors.web.cookies import keep_session, session_now, session_of
from hpxd.doors.web.multipart_body import form_fields
from hpxd.doors.web.origin import OriginCheck

DOOR = "ajax"
JSON_MARK = "\x00"
POST_ONLY = (b"POST",)
GET_TOO = (b"GET", b"HEAD", b"POST")
URLENCODED = b"application/x-www-form-urlencoded"
MULTIPART = b"multipart/form-data"


def function_name(request):
    """The dotted name of ``/ajax/<function>`` (one path segment)."""
    if len(request.postpath) != 1 or not request.postpath[0]:
        raise errors.FunctionNotFound(
            f"no such path {request.path.decode('latin-1')!r}: call /ajax/<function>")
    try:
        return request.postpath[0].decode("utf-8")
    except UnicodeDecodeError:
        raise errors.FunctionNotFound("a function name is UTF-8 text") from None


def content_type(request):
    return (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()


def raw_fields(request):
    """Every parameter of the request as ``[(name, value)]`` (bytes), query
    string first, then a form body's."""
    query = request.uri.partition(b"?")[2]
    kind = content_type(request) if request.method == b"POST" else None
    if kind not in (None, URLENCODED, MULTIPART) and _has_body(request):
        raise errors.ParsingError(f"a POST body to /ajax must be {URLENCODED.decode()} or "
                                  f"{MULTIPART.decode()}, not {kind.decode('latin-1')[:100]!r}")
    if kind == URLENCODED and not query:
        # twisted.web parsed the form body into request.args already (and
        # only that, with no query string): no need to parse it again.
        return [(name, value) for name, values in request.args.items() for value in values]
    fields = _pairs(parse_qs(query, keep_blank_values=True))
    if kind == URLENCODED:
        fields += _pairs(parse_qs(_body(request), keep_blank_values=True))
    elif kind == MULTIPART:  # the web door kept it from twisted.web (multipart_body.py)
        fields += form_fields(request)
    return fields


def _pairs(parsed):
    return [(name, value) for name, values in parsed.items() for value in values]


def _has_body(request):
    if request.content is None:
        return False
    return request.content.seek(0, 2) > 0


def _body(request):
    if request.content is None:
        return b""
    request.content.seek(0)
    return request.content.read()


def keyword_arguments(fields):
    """``{name: value}`` from raw fields: ``\\x00`` + JSON is that JSON,
    anything else the text itself; a name given twice is refused."""
    kwargs = {}
    for raw_name, raw_value in fields:
        try:
            name, value = raw_name.decode("utf-8"), raw_value.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.ParsingError("parameter names and values must be UTF-8") from None
        if name in kwargs:
            raise errors.BadArguments(f"the parameter {name!r} is given more than once")
        if value[:1] == JSON_MARK:
            try:
                value = load_json(value[1:])
            except (ValueError, RecursionError) as e:
                raise errors.JSONParseError(f"the parameter {name!r} starts with \\x00 but the "
                                            f"rest is not JSON ({str(e)[:200]})") from None
        kwargs[name] = value
    return kwargs


def _kept(result, request, session):
    """Once a call has ended (and stored a guest it gave data): the cookie."""
    keep_session(request, session)
    return result


class AjaxResource(resource.Resource):
    isLeaf = True

    def __init__(self, node, config, reactor):
        super().__init__()
        self.node = node
        self.origins = OriginCheck(config.web.allowed_origins)

    def render(self, request):
        session = None
        try:
            foreign = self.origins.refusal(request)
            if foreign is not None:
                raise foreign
            fname = function_name(request)
            function = self.node.task.resolve(fname)
            refused = wrong_method(request, GET_TOO if function.get else POST_ONLY)
            if refused is not None:
                return refused
            kwargs = keyword_arguments(raw_fields(request))
            session = session_now(request, self.node)
            if session is None:  # the store must be asked
                return json_later(request, self.answer(request, fname, kwargs))
            result = self.node.dispatcher.call_now(session, fname, (), kwargs,
                                                   request_environ(request, DOOR))
        except errors.HpxdError as e:
            if session is not None:
                keep_session(request, session)
            return json_error(request, e)
        if isinstance(result, defer.Deferred):  # the call goes on
            return json_later(request, result.addBoth(_kept, request, session))
        # The common call (a session the store had at hand, a function that
        # answered at once) is answered here, with no Deferred.
        keep_session(request, session)
        return json_answer(request, result)

    @deferred
    async def answer(self, request, fname, kwargs):
        session = await session_of(request, self.node)
        try:
            return await self.node.dispatcher.call(session, fname, (), kwargs,
                                                   request_environ(request, DOOR))
        finally:
            keep_session(request, session)

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

from twisted.internet import defer
from twisted.web import resource

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.core.jsonvalues import load_json
from hpxd.doors.web import (json_answer, json_error, json_later, request_environ,
                             wrong_method)
from hpxd.doors.web.cookies import keep_session, session_now, session_of
from hpxd.doors.web.params import raw_fields, text_params
from hpxd.doors.web.origin import OriginCheck

DOOR = "ajax"
JSON_MARK = "\x00"
POST_ONLY = (b"POST",)
GET_TOO = (b"GET", b"HEAD", b"POST")


def function_name(request):
    """The dotted name of ``/ajax/<function>`` (one path segment)."""
    if len(request.postpath) != 1 or not request.postpath[0]:
        raise errors.FunctionNotFound(
            f"no such path {request.path.decode('latin-1')!r}: call /ajax/<function>")
    try:
        return request.postpath[0].decode("utf-8")
    except UnicodeDecodeError:
        raise errors.FunctionNotFound("a function name is UTF-8 text") from None


def keyword_arguments(fields):
    """``{name: value}`` from raw fields: ``\\x00`` + JSON is that JSON,
    anything else the text itself; a name given twice is refused."""
    kwargs = text_params(fields)
    for name, value in kwargs.items():
        if value[:1] == JSON_MARK:
            try:
                kwargs[name] = load_json(value[1:])
            except (ValueError, RecursionError) as e:
                raise errors.JSONParseError(f"the parameter {name!r} starts with \\x00 but the "
                                            f"rest is not JSON ({str(e)[:200]})") from None
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

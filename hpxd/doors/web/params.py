"""A web request's parameters: the query string's and a form body's.

For the resources that take HTML-form style parameters (``/ajax``,
``/forms``): a urlencoded body (parsed by twisted.web) or a
multipart/form-data one (kept from twisted.web and parsed by
hpxd/doors/web/multipart_body.py).
"""

from urllib.parse import parse_qs

from hpxd.core import errors
from hpxd.doors.web.multipart_body import form_fields

URLENCODED = b"application/x-www-form-urlencoded"
MULTIPART = b"multipart/form-data"


def content_type(request):
    return (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()


def raw_fields(request):
    """Every parameter of the request as ``[(name, value)]`` (bytes), query
    string first, then a form body's (urlencoded or multipart; a POST body
    of another type is refused)."""
    query = request.uri.partition(b"?")[2]
    kind = content_type(request) if request.method == b"POST" else None
    if kind not in (None, URLENCODED, MULTIPART) and _has_body(request):
        where = request.path.decode("latin-1")[:100]
        raise errors.ParsingError(f"a POST body to {where} must be {URLENCODED.decode()} or "
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


def text_params(fields):
    """``{name: text}`` from raw ``[(name, value)]`` fields; text that is
    not UTF-8 and a name given twice are refused (a server that kept one of
    them silently would act on what the client did not mean)."""
    params = {}
    for raw_name, raw_value in fields:
        try:
            name, value = raw_name.decode("utf-8"), raw_value.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.ParsingError("parameter names and values must be UTF-8") from None
        if name in params:
            raise errors.BadArguments(f"the parameter {name[:60]!r} is given more than once")
        params[name] = value
    return params

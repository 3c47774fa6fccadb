"""``/ext/<path>``: requests from other services to the app's
``@task.on_ext_request`` handler (docs/http.md).

``POST /ext/<path>`` with a JSON body runs ``fn(item, path, params,
environ)`` with ``path`` (``<path>`` without slashes at its ends) and
``params`` (the JSON body); the handler's value is the JSON answer.

A request must carry ``Authorization: Bearer <token>`` with a token of
``[web] ext_tokens`` (each compared in constant time) unless the app
marks its path public; otherwise 401. Service-to-service requests carry
no ``Origin``; one that does is a browser's, and passes only from an
allowed origin (the web door's one check). The handler runs through the
core's dispatcher (counted, refused while quitting, errors mapped) in the
session the request's cookie names, or a transient guest's.
"""

import hmac

from twisted.web import resource

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.core.jsonvalues import load_json
from hpxd.doors.web import json_error, json_later, request_environ, wrong_method
from hpxd.doors.web.cookies import keep_session, session_of
from hpxd.doors.web.origin import OriginCheck

DOOR = "ext"
METHODS = (b"POST",)


def bearer_token(request):
    """The token of an ``Authorization: Bearer <token>`` header (bytes), or None."""
    header = request.getHeader(b"authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return None
    return token.strip()


def token_matches(given, tokens):
    """Is ``given`` one of ``tokens``? Every token is compared, each in
    constant time, so the answer's timing tells nothing of which one or
    how much of it matched."""
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given, token)
    return found


def ext_path(request):
    """``<path>`` of ``/ext/<path>`` as text, slashes at its ends removed."""
    try:
        return "/".join(segment.decode("utf-8") for segment in request.postpath).strip("/")
    except UnicodeDecodeError:
        raise errors.ParsingError("the /ext path must be UTF-8") from None


def json_params(request):
    body = request.content.read() if request.content is not None else b""
    try:
        return load_json(body.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise errors.JSONParseError(f"the body of an /ext request must be JSON "
                                    f"({str(e)[:200]})") from None


class ExtResource(resource.Resource):
    isLeaf = True

    def __init__(self, node, config, reactor):
        super().__init__()
        self.node = node
        self.origins = OriginCheck(config.web.allowed_origins)
        self.tokens = [token.encode("utf-8") for token in config.web.ext_tokens]

    def render(self, request):
        refused = wrong_method(request, METHODS)
        if refused is not None:
            return refused
        try:
            foreign = self.origins.refusal(request)
            if foreign is not None:
                raise foreign
            path = ext_path(request)
            token = self.authorised(request, path)
            params = json_params(request)
        except errors.HpxdError as e:
            return json_error(request, e)
        return json_later(request, self.answer(request, path, params, token))

    def authorised(self, request, path):
        """Whether the request carried a valid token; AuthRequired when it
        must (the path is not public) and did not."""
        given = bearer_token(request)
        valid = given is not None and token_matches(given, self.tokens)
        if not valid and path not in self.node.task.ext_public:
            request.setHeader(b"www-authenticate", b'Bearer realm="hpxd ext"')
            raise errors.AuthRequired(
                f"/ext/{path} needs 'Authorization: Bearer <token>' with a token of "
                "[web] ext_tokens" if given is None else "the /ext token is not valid")
        return valid

    @deferred
    async def answer(self, request, path, params, token):
        session = await session_of(request, self.node)
        try:
            return await self.node.dispatcher.ext(
                session, path, params, request_environ(request, DOOR, token=token))
        finally:
            keep_session(request, session)

"""``/session``: a browser's session over plain HTTP (docs/http.md).

- ``GET /session``: who this request runs as, ``{"user", "role"}``. A
  request without a session cookie runs as a transient guest: nothing is
  stored and no cookie is set.
- ``POST /session`` with ``{"user", "password"}`` (JSON, or form fields):
  log in; the answer sets the ``hpxd_session`` cookie, so the page's
  WebSocket (``/ws``, or ``/``) is that user's from its upgrade on.
- ``DELETE /session``: log out everywhere; the cookie is cleared.

POST and DELETE change state: a browser's request from an Origin not in
``[web] allowed_origins`` is refused with 403 (the web door's one check).
Logging in and out go through the core's ``Login``, as on every door.
"""

from twisted.web import resource

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.core.doorkit import peer_text
from hpxd.core.jsonvalues import load_json
from hpxd.doors.web import NoSuchPath, json_error, json_later, wrong_method
from hpxd.doors.web.cookies import keep_session, log_out, session_of
from hpxd.doors.web.multipart_body import form_fields
from hpxd.doors.web.origin import OriginCheck

METHODS = (b"GET", b"HEAD", b"POST", b"DELETE")
CHANGES_STATE = (b"POST", b"DELETE")


def who(session):
    return {"user": session.user_name, "role": session.role}


def credentials(request):
    """``(user, password)`` from a JSON object body, or from form fields."""
    body = request.content.read() if request.content is not None else b""
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type == b"multipart/form-data":  # the web door kept it from twisted.web
        fields = dict(form_fields(request))
        return tuple(fields.get(name, b"").decode("utf-8", "replace")
                     for name in (b"user", b"password"))
    if content_type == b"application/x-www-form-urlencoded":
        fields = request.args
        return tuple((fields.get(name.encode()) or [b""])[0].decode("utf-8", "replace")
                     for name in ("user", "password"))
    try:
        data = load_json(body.decode("utf-8"))
    except ValueError as e:  # UnicodeDecodeError is one
        raise errors.JSONParseError(f"the body must be a JSON object {{user, password}} "
                                    f"({e})") from None
    if not isinstance(data, dict):
        raise errors.MissingCredentials('the body must be a JSON object {"user", "password"}')
    return data.get("user"), data.get("password")


class SessionResource(resource.Resource):
    isLeaf = True

    def __init__(self, node, config, reactor):
        super().__init__()
        self.node = node
        self.origins = OriginCheck(config.web.allowed_origins)

    def render(self, request):
        refused = wrong_method(request, METHODS)
        if refused is not None:
            return refused
        if request.postpath not in ([], [b""]):
            return NoSuchPath().render(request)
        if request.method in CHANGES_STATE:
            foreign = self.origins.refusal(request)
            if foreign is not None:
                return json_error(request, foreign)
        answer = {b"POST": self._log_in, b"DELETE": self._log_out}.get(request.method, self._who)
        return json_later(request, answer(request))

    @deferred
    async def _who(self, request):
        session = await session_of(request, self.node)
        keep_session(request, session)
        return who(session)

    @deferred
    async def _log_in(self, request):
        user, password = credentials(request)
        peer = peer_text(request.getClientAddress())
        session = await self.node.login.login(user, password, peer)
        keep_session(request, session)
        return who(session)

    @deferred
    async def _log_out(self, request):
        await log_out(request, self.node)
        return {"user": None}

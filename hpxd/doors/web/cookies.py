"""The session of a web request: the ``hpxd_session`` cookie.

Every web resource finds its request's session, and keeps it in the
browser, through these helpers:

- ``session_of(request, node)``: the session the request's cookie names,
  or (no cookie, or one whose session ended) a transient guest session
  that no store holds until a call gives it data. So requests without a
  cookie cannot grow the session store.
- ``session_now(request, node)``: the same without a Deferred when the
  store can answer at once (None when it cannot: then ``session_of``).
- ``keep_session(request, session)``: after the request's work, set the
  cookie when the session is stored and is not the one the request named
  (a login, a guest given data); a cookie naming a session that ended is
  cleared; nothing else for a transient guest.
- ``end_session(request)``: clear the cookie.
- ``log_out(request, node)``: end the session the cookie names, on every
  door and node, and clear the cookie.

The cookie is ``HttpOnly`` (page scripts cannot read it), ``SameSite=Lax``
(other sites' pages do not send it with their POSTs), ``Path=/`` and, on a
TLS listener, ``Secure``. The WebSocket upgrade reads the same cookie with
``session_id_in``.
"""

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.core.doorkit import peer_text

COOKIE = "hpxd_session"


def session_id_in(header):
    """The session id in a ``Cookie`` header's text, or None."""
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value.strip('"')
    return None


def request_session_id(request):
    """The session id a twisted.web ``request``'s cookie names, or None."""
    headers = request.requestHeaders.getRawHeaders(b"cookie") or []
    for header in headers:
        session_id = session_id_in(header)
        if session_id:
            return session_id
    return None


@deferred
async def session_of(request, node):
    """The session ``request`` runs in (see the module's text). Fails with
    the backend's error when the session cannot be read: a logged-in user
    is never served as a guest behind their back."""
    peer = peer_text(request.getClientAddress())
    return await node.login.session_or_guest(request_session_id(request), peer)


def session_now(request, node):
    """``session_of`` without a Deferred when the store answers without
    I/O (the memory store): the session, or None when ``session_of`` must
    be asked. Raises AuthRequired for a guest where guests are not allowed."""
    session_id = request_session_id(request)
    if session_id:
        try:
            session = node.sessions.get_now(session_id)
        except errors.SessionExpired:
            return node.login.transient_guest()
        return session
    return node.login.transient_guest()


def keep_session(request, session):
    """Set the cookie for ``session`` unless the request named it already or
    it is in no store (a transient guest: a cookie the request sent named
    a session that ended, and is cleared)."""
    named = request_session_id(request)
    if session.transient:
        if named:
            end_session(request)
    elif session.id != named:
        _set_cookie(request, session.id)


@deferred
async def log_out(request, node):
    """End the session ``request``'s cookie names (if it still lives)
    through the core's Login, everywhere, and clear the cookie."""
    session_id = request_session_id(request)
    end_session(request)
    if not session_id:
        return
    peer = peer_text(request.getClientAddress())
    try:
        session = await node.login.attach(session_id, peer)
    except errors.SessionExpired:
        return
    await node.login.logout(session, peer)


def end_session(request):
    """Tell the browser to forget the session cookie."""
    _set_cookie(request, "", max_age="0")


def _set_cookie(request, value, max_age=None):
    request.addCookie(COOKIE, value, path="/", httpOnly=True, sameSite="lax",
                      secure=request.isSecure(), max_age=max_age)

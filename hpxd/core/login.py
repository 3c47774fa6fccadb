"""Login, guest, attach and logout: the one place every door authenticates.

Built on ``twisted.cred``, as ``twisted.words`` shares one login between IRC
and PB: a ``Portal`` asks a checker who the credentials belong to (the
scrypt password check, or anonymous access when guests are allowed) and the
realm turns that avatar id into a new session in the node's store.

Each attempt is logged on ONE line naming the user and the peer (never the
password); a failed login answers only after ``failed_login_delay`` seconds,
waited on the reactor's clock so other clients are served meanwhile.
"""

from twisted.cred import checkers, credentials
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from hpxd.core import errors
from hpxd.core.deferreds import deferred
from hpxd.core.interfaces import ISession
from hpxd.core.passwords import DUMMY_HASH, verify_in_thread
from hpxd.core.sessions import Session


@implementer(checkers.ICredentialsChecker)
class PasswordChecker:
    """Users from the config, checked against their scrypt hash in a thread
    of ``hash_pool`` (a ``HashPool``; None: the reactor's shared pool, for
    unit tests and tools).

    Unknown users cost the same scrypt work as known ones (a dummy hash), so
    the time taken does not tell which user names exist.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, users, hash_pool=None):
        self.users = users
        self.verify = verify_in_thread if hash_pool is None else hash_pool.verify

    def requestAvatarId(self, creds):
        user = self.users.get(creds.username)
        d = self.verify(creds.password, user.password_hash if user else DUMMY_HASH)
        return d.addCallback(self._checked, user)

    @staticmethod
    def _checked(ok, user):
        if ok and user is not None:
            return user.name
        raise UnauthorizedLogin()


@implementer(IRealm)
class SessionRealm:
    """Avatar id -> a new session: a user name, or ANONYMOUS for a guest."""

    def __init__(self, auth, sessions):
        self.auth = auth
        self.sessions = sessions

    def requestAvatar(self, avatar_id, mind, *interfaces):
        if ISession not in interfaces:
            raise NotImplementedError("hpxd's realm only makes sessions")
        if avatar_id is checkers.ANONYMOUS:
            user_info = {"user_name": None, "role": self.auth.guest_role}
        else:
            user_info = {"user_name": avatar_id, "role": self.auth.users[avatar_id].role}
        d = self.sessions.create(user_info)
        return d.addCallback(lambda session: (ISession, session, lambda: None))


class Login:
    """What doors call to authenticate; each method fires with a Session
    (``logout`` with None) or fails with an ``HpxdError``."""

    log = Logger()

    def __init__(self, auth, sessions, hash_pool=None, on_session_end=None):
        self.auth = auth
        self.sessions = sessions
        self.hash_pool = hash_pool  # the node's, kept across reloads (see Node.reconfigure)
        # Callables f(session_id) run after a logout (the node's list, kept
        # across reloads): SIPs, say, drop what they held for the session.
        self.on_session_end = [] if on_session_end is None else on_session_end
        found = [PasswordChecker(auth.users, hash_pool)]
        if auth.guest_allowed:
            found.append(checkers.AllowAnonymousAccess())
        self.portal = Portal(SessionRealm(auth, sessions), found)

    @deferred
    async def guest(self, peer):
        try:
            session = await self._enter(credentials.Anonymous())
        except UnhandledCredentials:
            self.log.info("guest login from {peer} refused: guests are not allowed", peer=peer)
            raise errors.AuthRequired("guests are not allowed on this server: log in") from None
        self.log.info("guest login from {peer}", peer=peer)
        return session

    @deferred
    async def login(self, user, password, peer):
        if not (isinstance(user, str) and isinstance(password, str) and user and password):
            self.log.info("login for user {user!r} from {peer} refused: missing credentials",
                          user=user if isinstance(user, str) else None, peer=peer)
            raise errors.MissingCredentials("both 'user' and 'password' must be non-empty strings")
        try:
            session = await self._enter(credentials.UsernamePassword(user, password))
        except UnauthorizedLogin:
            self.log.info("login for user {user!r} from {peer} failed: wrong user name or "
                          "password", user=user, peer=peer)
            await task.deferLater(self.auth.clock, self.auth.failed_login_delay, lambda: None)
            raise errors.WrongCredentials() from None
        self.log.info("login for user {user!r} from {peer}", user=user, peer=peer)
        return session

    async def _enter(self, creds):
        _, session, _ = await self.portal.login(creds, None, ISession)
        return session

    def attach(self, session_id, peer):
        """The live session ``session_id``, made on any door of any node
        (SessionExpired when there is none). Not logged: doors look sessions
        up on every request, and log the refusals they answer."""
        return self.sessions.get(session_id)

    def transient_guest(self):
        """A guest session that is in no store (yet): the session of a web
        request without a session, stored only once a call gives it data
        (the dispatcher does). Not logged: it costs nothing lasting.
        AuthRequired when guests are not allowed."""
        if not self.auth.guest_allowed:
            raise errors.AuthRequired("guests are not allowed on this server: log in")
        return Session.transient_guest(self.auth.guest_role)

    @deferred
    async def session_or_guest(self, session_id, peer):
        """The live session ``session_id`` (a request's cookie), or, when
        there is none or it expired, a transient guest session. Any other
        failure (the backend is away) is the caller's: a logged-in user is
        never silently served as a guest."""
        if session_id:
            try:
                return await self.attach(session_id, peer)
            except errors.SessionExpired:
                pass
        return self.transient_guest()

    @deferred
    async def logout(self, session, peer):
        await self.sessions.delete(session.id)
        self.log.info("logout of user {user!r} from {peer}", user=session.user_name, peer=peer)
        await self.session_ended(session.id)

    async def session_ended(self, session_id):
        """Run every ``on_session_end`` callback (one returning a Deferred
        is awaited). A failing one is logged, never the logout's failure:
        the session is gone either way."""
        for callback in list(self.on_session_end):
            try:
                await defer.maybeDeferred(callback, session_id)
            except Exception:
                self.log.failure("session-end callback {callback!r} failed", callback=callback)


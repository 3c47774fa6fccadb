"""One hpxd node: the application plus the seams, as every door sees it."""

from twisted.internet import defer
from twisted.logger import Logger

from hpxd.core import errors
from hpxd.core.control import ServerControl
from hpxd.core.dispatch import Dispatcher
from hpxd.core.form_service import FormService
from hpxd.core.login import Login


class Node:
    """What a door needs: ``name``, ``task``, ``auth``, ``login``,
    ``sessions``, ``scope``, ``hub``, ``records``, ``dispatcher``,
    ``control``, ``files`` (uploads, downloads, reports' files:
    hpxd.core.files.Files; set by the service), ``client_names`` (ids
    clients chose: ``introduce_self``), ``connection_grace``,
    ``record_locks`` and ``sips`` (the form door's record locks and SIPs,
    on the backend's leases), ``forms`` (the form door's calls) and ``on_session_end`` (callables run with a
    session id after a logout).

    ``stopper(status, command)`` is set by the service tree: it stops the
    listeners, waits for calls in flight, pushes ``command`` to every client,
    closes them and ends the process with ``status``.
    """

    log = Logger()

    def __init__(self, name, task, auth, sessions, scope, hub, records=None,
                 backend_ready=None, client_names=None, connection_grace=10, hash_pool=None):
        self.name = name
        self.task = task
        self.auth = auth
        self.sessions = sessions
        self.scope = scope
        self.hub = hub
        self.records = records
        self.backend_ready = backend_ready or (lambda: True)  # see hpxd.core.health
        self.client_names = client_names  # hpxd.core.clients.ClientNames
        # Seconds a session made by a connection outlives it ([sessions]).
        self.connection_grace = connection_grace
        # f(session_id) run after a logout (hpxd.core.login); a session that
        # expires runs nothing: what is bound to it checks it is still live.
        self.on_session_end = []
        self.login = Login(auth, sessions, hash_pool, self.on_session_end)
        self.record_locks = None  # hpxd.core.record_locks.RecordLocks (set by the service)
        self.sips = None  # hpxd.core.sips.SipStore (set by the service)
        self.forms = FormService(self)  # the form door's calls (hpxd.core.form_service)
        self.dispatcher = Dispatcher(self)
        self.control = ServerControl(self)
        self.files = None  # hpxd.core.files.Files, on the records' database (hpxd.service)
        self.stopper = None

    def reconfigure(self, auth):
        """New users, roles and guest policy (a reload): calls from now on
        are authorised, and logins checked, against ``auth``."""
        self.auth = auth
        self.login = Login(auth, self.sessions, self.login.hash_pool,  # the same threads
                           self.on_session_end)

    async def session_of(self, client_id):
        """The live session of the client that goes by ``client_id``
        (``introduce_self``, on any node), or None."""
        if self.client_names is None:
            return None
        session_id = await self.client_names.session_id_of(client_id)
        if session_id is None:
            return None
        try:
            return await self.sessions.get(session_id)
        except errors.SessionExpired:
            return None

    def stop(self, status=0, command=None):
        if self.stopper is None:  # no service tree (unit tests): no doors to wait for
            self.dispatcher.accepting = False
            if command is not None:
                self.hub.command(command)
            return defer.succeed(None)
        return defer.maybeDeferred(self.stopper, status, command)

"""The core's seams. Backends (memory, redis) implement them.

Every method returns a Deferred, even in the memory backend, so that code
written against one backend runs unchanged on the other. The one exception
is ``ISessionStore.get_now``, a synchronous fast path that a store may
decline (None) and that every caller backs with ``get``.
"""

from zope.interface import Attribute, Interface


class ISession(Interface):
    """A session, as every door and backend sees it (``hpxd.core.sessions.Session``)."""

    id = Attribute("The session id: 256 random bits, URL-safe text.")
    user_info = Attribute("{user_name, role}; user_name is None for a guest.")
    data = Attribute("The app's per-session dict, saved after a call that changed it.")


class ISessionStore(Interface):
    lifespan = Attribute("Sliding lifespan of a session, in seconds.")

    def create(user_info):
        """Make a new session for ``user_info`` ({user_name, role}).

        Fires with a L{hpxd.core.sessions.Session}. A guest session
        (user_name None) fails with L{hpxd.core.errors.TooManyGuests} while
        ``[sessions] max_guest_sessions`` guest sessions live; a user's
        session is never refused, nor any session evicted, for guests.
        """

    def add(session):
        """Store a transient session (``Session.transient``, made outside the
        store) under its own id, as ``create`` stores a new one (the guest
        cap applies). Fires with None."""

    def get(session_id):
        """Fire with the live session and extend its lifespan.

        Fails with L{hpxd.core.errors.SessionExpired} when the id is unknown
        or its lifespan ran out; never falls back to a guest.
        """

    def get_now(session_id):
        """``get`` without a Deferred, for stores that can answer without I/O.

        Returns the live session (its lifespan extended), raises
        L{hpxd.core.errors.SessionExpired} as ``get`` fails, or returns None
        when the answer needs I/O: then call ``get``. Doors try this first
        on every call; the memory store always answers, Redis never does.
        """

    def save(session):
        """Store the session's ``data`` dict. Fires with None."""

    def delete(session_id):
        """Forget a session (logout). Fires with None."""

    def expire_in(session_id, seconds, only_empty_guest=False):
        """Let the session live only ``seconds`` more unless it is used
        meanwhile (a use restores its sliding lifespan). Fires with None.
        For sessions bound to a connection that closed. ``only_empty_guest``:
        do so only if it is a guest session holding no data (decided by the
        store, as the session is now)."""


class IScope(Interface):
    """The application's global shared store (cluster-wide with Redis).

    Values must be JSON-serialisable; what comes back is a copy.
    """

    def get(key, default=None):
        """Fire with the value stored under ``key``, or ``default``."""

    def set(key, value):
        """Store ``value`` under ``key``. Fires with None."""

    def delete(key):
        """Remove ``key``. Fires with None."""


class IHubClient(Interface):
    """One connected client of any door, as the hub sees it."""

    client_id = Attribute("Unique id of this connection (str).")
    session_id = Attribute("Id of the session the connection uses, or None.")

    def deliver(message):
        """Write a L{hpxd.core.hub.HubMessage} to this client, in its door's format."""


class IHub(Interface):
    """Fan-out of pushes to connected clients.

    Application pushes (``broadcast``, ``send_to_session``, ``send_to_client``)
    reach the clients of every node; ``command`` (server commands) stays on
    this node, so a rolling restart quits one node at a time.
    """

    def register(client):
        """Add an L{IHubClient}."""

    def unregister(client):
        """Remove an L{IHubClient}."""

    def rename(client, client_id):
        """Address the registered ``client`` as ``client_id`` from now on."""

    def clients():
        """The clients connected to this node (a list)."""

    def broadcast(action, data=None, stream=None):
        """Push to every client of every node. Fires with None.

        ``stream`` names where the push comes from (a process name, say);
        it reaches every client with the message, on every node."""

    def send_to_session(session_id, action, data=None, stream=None):
        """Push to every client using ``session_id``, on every node. Fires with None."""

    def send_to_client(client_id, action, data=None, stream=None):
        """Push to one client, on whichever node holds it. Fires with None."""

    def command(name):
        """Deliver the server command ``name`` to every client of this node."""


class IDoor(Interface):
    """The service's contract with a door (TCP, web, ...).

    The service builds doors from config through ``hpxd.doors.build`` and
    knows them only through this interface. On a quit or restart it calls,
    in this order: ``stop_listening``; then ``drain`` (with the dispatcher's
    own drain); then pushes the server command; then ``close_connections``.
    """

    name = Attribute("The door's config section, e.g. 'tcp'.")

    def listen():
        """Open every endpoint of the door's ``listen`` list.

        Fires when all listen; fails (the node then exits 1) if one cannot.
        Called from ``privilegedStartService``, before twistd drops privileges.
        """

    def addresses():
        """The ``IAddress`` of each port the door listens on (a list)."""

    def stop_listening():
        """Accept no new connections. Fires when every port is closed."""

    def drain():
        """Fire once every request the door has taken is answered and the
        answer written (requests that arrive meanwhile are refused with
        ``ShuttingDown``, or answered as the door's protocol says)."""

    def close_connections(reason):
        """Close every connection once the request in hand is answered
        (``reason``: the server command, or None). Fires when all are
        closed; cancelling the Deferred drops those still open at once (the
        quit sequence does so after ``shutdown_timeout``)."""


class ILeases(Interface):
    """Names held for a while by one holder, cluster-wide with Redis: which
    node runs a process, which connection goes by an introduced client id.

    A holder keeps a name by renewing it before ``ttl`` runs out; when its
    node dies the name frees itself once ``ttl`` has passed.
    """

    def acquire(name, holder, ttl, value=None):
        """Take ``name`` for ``holder`` for ``ttl`` seconds, storing ``value``
        (JSON) with it; if ``holder`` holds it already, its value and ttl are
        renewed. Fires with True, or False when another holder has it."""

    def renew(held, ttl):
        """Extend each ``(name, holder)`` of the list ``held`` by ``ttl``
        seconds. Fires with the list of those no longer held (taken by
        another holder, or expired)."""

    def release(name, holder):
        """Free ``name`` if ``holder`` still holds it. Fires with None."""

    def lookup(name):
        """Fire with the value stored with ``name``, or None when nobody holds it."""

    def take(name, holder, ttl, value=None):
        """Take ``name`` for ``holder`` for ``ttl`` seconds, storing ``value``,
        whoever holds it now (a forced take-over, in one atomic step). Fires
        with the holder it was taken from (``holder`` itself when it held it
        already), or None when it was free."""


class IFileStore(Interface):
    """Where uploaded files and report results live, shared by every node.

    A file is stored under an id the store makes (``secrets``, 256 bits);
    the client's file name is only a column of metadata. Its bytes go in
    and out in chunks (``chunk_size``), never whole. Files are written by
    ``put`` and read only once complete. The default,
    ``hpxd.core.file_store.DatabaseFileStore``, keeps them in the records
    database (docs/files.md).
    """

    chunk_size = Attribute("Bytes per stored chunk (the last one may be shorter).")

    def prepare():
        """Create the store's tables if missing. Fires with None."""

    def put(name, content_type, item, source, owner=None, lifetime=None):
        """Store the bytes of the iterable ``source`` (consumed in a worker
        thread, a piece at a time, so it may read a file or parse a body).
        ``item``: the dotted path of the item the file belongs to;
        ``owner``: for a one-time file, the text it is bound to (a session
        id's digest); ``lifetime``: seconds before the file is dropped
        (None: kept until deleted). Fires with the ``StoredFile``; if
        ``source`` raises, that error, and nothing of the file is left."""

    def get(file_id):
        """Fire with the complete, unexpired ``StoredFile`` of ``file_id``
        (any text: an unknown or malformed id is simply None)."""

    def read(file_id, index):
        """Fire with the bytes of chunk ``index`` (0 .. chunks - 1), or None
        when the file (or that chunk) is gone."""

    def claim(file_id, owner):
        """Take a one-time file for its one download: fire with True if it
        was there, bound to ``owner`` and not yet taken; from then on
        ``get`` no longer finds it."""

    def delete(file_id):
        """Drop the file and its chunks. Fires with True if it was there."""

    def drop_expired(now):
        """Drop every file whose lifetime ended before ``now`` (Unix time):
        one-time files nobody fetched, fetched ones, uploads a dead node
        left half written. Fires with how many were dropped."""


# Record locks (hpxd.core.record_locks) and QFQ SIPs (hpxd.core.sips) are
# built on ILeases, so each backend serves them without a class of its own.

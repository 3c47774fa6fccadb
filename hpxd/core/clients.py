"""Client ids that clients choose (the WebSocket door's ``introduce_self``).

Every connection has a random client id of its own; a client may instead go
by a name it chooses, so that a process can push to it
(``ctx.push(action, data, client_id=...)``) and find its session
(``ctx.session_of(client_id)``). A chosen name is unique in the cluster: it
is held as the lease ``client:<name>`` (``ILeases``) for as long as the
connection lives, renewed by its node, and freed when the connection closes
or, if its node dies, once the lease time has passed.
"""

import re

from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger

from hpxd.core import errors

CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


def lease_name(client_id):
    return "client:" + client_id


class ClientNames:
    """The names the clients of this node chose, kept in the cluster's leases.

    A client (``IHubClient``) names itself with ``introduce``; ``holder`` is
    what identifies the connection itself in the lease (its first, random
    client id), so no other connection, here or on another node, can take
    the name while it lives.
    """

    log = Logger()

    def __init__(self, leases, hub, ttl, clock):
        self.leases, self.hub, self.ttl, self.clock = leases, hub, ttl, clock
        self._named = {}  # client -> (name, holder)

    @staticmethod
    def check(client_id):
        if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
            raise errors.BadArguments(
                "client_id must be 1 to 128 letters, digits or _ . : @ -")
        return client_id

    async def introduce(self, client, holder, client_id, session_id):
        """``client`` goes by ``client_id`` from now on; NameTaken if another
        connection holds it."""
        self.check(client_id)
        taken = await self.leases.acquire(lease_name(client_id), holder, self.ttl,
                                          {"session": session_id})
        if not taken:
            raise errors.NameTaken(f"client id {client_id!r} is taken by another connection")
        previous = self._named.get(client)
        self._named[client] = (client_id, holder)
        self.hub.rename(client, client_id)
        if previous is not None and previous[0] != client_id:
            await self.leases.release(lease_name(previous[0]), holder)

    def session_changed(self, client, session_id):
        """A named client logged in, out or attached: ``session_of`` follows."""
        named = self._named.get(client)
        if named is None:
            return defer.succeed(None)
        name, holder = named
        d = self.leases.acquire(lease_name(name), holder, self.ttl, {"session": session_id})
        return d.addErrback(self._failed, "record the session of client id", name)

    def forget(self, client):
        """The connection closed: its name is free again."""
        named = self._named.pop(client, None)
        if named is None:
            return defer.succeed(None)
        name, holder = named
        d = self.leases.release(lease_name(name), holder)
        return d.addErrback(self._failed, "free client id", name)

    async def session_id_of(self, client_id):
        """The session id of the client that goes by ``client_id``, or None."""
        if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
            return None
        value = await self.leases.lookup(lease_name(client_id))
        return value.get("session") if isinstance(value, dict) else None

    def renew(self):
        held = [(lease_name(name), holder) for name, holder in self._named.values()]
        if not held:
            return defer.succeed(None)
        d = self.leases.renew(held, self.ttl)
        d.addCallback(self._renewed)
        return d.addErrback(self._failed, "renew client ids", len(held))

    def _renewed(self, lost):
        # Redis was away longer than the lease: take the names back if free.
        for client, (name, holder) in list(self._named.items()):
            if (lease_name(name), holder) in lost:
                self.log.warn("client id {name!r} had expired; taking it again", name=name)
                d = self.leases.acquire(lease_name(name), holder, self.ttl,
                                        {"session": client.session_id})
                d.addErrback(self._failed, "take back client id", name)

    def _failed(self, failure, what, name):
        failure.trap(errors.HpxdError)
        self.log.warn("could not {what} {name!r}: {error}", what=what, name=name,
                      error=failure.value.msg)

    def service(self):
        """Renews the names of this node's clients every third of their lease time."""
        service = TimerService(self.ttl / 3, self.renew)
        service.clock = self.clock
        return service

"""What the hub carries, and the local delivery both backends share."""

from dataclasses import dataclass

from twisted.logger import Logger

from hpxd.core import errors
from hpxd.core.jsonvalues import dump_json

COMMAND, PUSH = "command", "push"


@dataclass(frozen=True)
class HubMessage:
    """``kind``: COMMAND (server command) or PUSH (broadcast or targeted push).
    ``stream``: where a push comes from (a process name), or None.

    Values a function sends to its caller with ``item.send`` never pass
    through the hub: they go to the call's sink (see ``ItemContext.send``)."""

    kind: str
    action: str
    data: object = None
    stream: object = None


def push_text(action, data, stream):
    """A push as JSON text, checked before anything is delivered on any
    backend: BadArguments (413) unless ``action`` is a string and ``data``
    and ``stream`` are JSON."""
    if not isinstance(action, str):
        raise errors.BadArguments(f"a push's action must be a string, not {action!r}")
    return dump_json({"action": action, "data": data, "stream": stream}, "pushed data")


class LocalClients:
    """The clients connected to this node, by client id and by session, and
    the IHub push methods every backend shares: a backend's ``_push(action,
    data, stream, session_id, client_id)`` decides how far a push goes."""

    log = Logger()

    def __init__(self):
        self._clients = {}

    def register(self, client):
        self._clients[client.client_id] = client

    def unregister(self, client):
        if self._clients.get(client.client_id) is client:
            del self._clients[client.client_id]

    def rename(self, client, client_id):
        """``client`` goes by ``client_id`` from now on (``introduce_self``)."""
        if self._clients.get(client.client_id) is client:
            del self._clients[client.client_id]
        client.client_id = client_id
        self._clients[client_id] = client

    def clients(self):
        return list(self._clients.values())

    def deliver(self, message, session_id=None, client_id=None):
        """Hand ``message`` to every matching client; one bad client cannot stop the rest."""
        if client_id is not None:
            targets = [self._clients[client_id]] if client_id in self._clients else []
        elif session_id is not None:
            targets = [c for c in self._clients.values() if c.session_id == session_id]
        else:
            targets = list(self._clients.values())
        for client in targets:
            try:
                client.deliver(message)
            except Exception:
                self.log.failure("delivering {action!r} to client {client}",
                                 action=message.action, client=client.client_id)
        return len(targets)

    def broadcast(self, action, data=None, stream=None):
        return self._push(action, data, stream)

    def send_to_session(self, session_id, action, data=None, stream=None):
        return self._push(action, data, stream, session_id=session_id)

    def send_to_client(self, client_id, action, data=None, stream=None):
        return self._push(action, data, stream, client_id=client_id)

    def _push(self, action, data, stream, session_id=None, client_id=None):
        raise NotImplementedError

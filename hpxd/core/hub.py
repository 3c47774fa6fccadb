"""What the hub carries, and the local delivery both backends share."""

from dataclasses import dataclass

from twisted.logger import Logger

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


class LocalClients:
    """The clients connected to this node, by client id and by session."""

    log = Logger()

    def __init__(self):
        self._clients = {}

    def register(self, client):
        self._clients[client.client_id] = client

    def unregister(self, client):
        self._clients.pop(client.client_id, None)

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

"""What the hub carries, and the local delivery both backends share."""

from dataclasses import dataclass

from twisted.logger import Logger

COMMAND, PUSH, SEND = "command", "push", "send"


@dataclass(frozen=True)
class HubMessage:
    """``kind``: COMMAND (server command), PUSH (broadcast or targeted push),
    SEND (a value a running function sends to its caller).
    ``stream``: for SEND, the caller's call or stream; for PUSH from a process,
    the process name."""

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

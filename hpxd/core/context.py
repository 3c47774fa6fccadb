"""The item a function is called on, as the function sees it (``item`` arg)."""

from hpxd.core import errors
from hpxd.core.hub import SEND, HubMessage


class ItemContext:
    """One call of one function: the item plus who called it and from where.

    ``environ`` holds at least ``door`` and ``peer``; doors add ``headers``
    where they have them, and ``client`` (the caller's hub client) for ``send``.
    """

    __slots__ = ("_node", "item", "session", "environ", "stream", "function")

    def __init__(self, node, item, session, environ, stream=None, function=None):
        self._node = node
        self.function = function  # full dotted name of the function being called
        self.item = item
        self.session = session
        self.environ = environ
        self.stream = stream

    name = property(lambda self: self.item.name)
    id = property(lambda self: self.item.id)
    path = property(lambda self: self.item.path)
    fields = property(lambda self: self.item.fields)
    task = property(lambda self: self.item.task)
    scope = property(lambda self: self._node.scope)

    @property
    def records(self):
        """The item's table (``hpxd.core.records.RecordTable``); only on table-backed items."""
        if not self.item.fields:
            raise AttributeError(f"item {self.item.path!r} has no fields, so no table")
        return self._node.records.table(self.item)

    def _can(self, privilege):
        return self._node.auth.can(self.session.user_info, self.item.privilege_key, privilege)

    def can_view(self):
        return self._can("view")

    def can_create(self):
        return self._can("create")

    def can_edit(self):
        return self._can("edit")

    def can_delete(self):
        return self._can("delete")

    def error(self, msg):
        """``raise item.error("...")``: the caller gets this text with code 400."""
        return errors.ApplicationError(str(msg))

    def send(self, data):
        """Push ``data`` to the caller's connection while the call runs."""
        client = self.environ.get("client")
        if client is not None:
            client.deliver(HubMessage(SEND, self.function or self.item.path, data, self.stream))

    def broadcast(self, action, data=None):
        """Push to every client of every door, on every node. Fires when handed over."""
        return self._node.hub.broadcast(action, data)

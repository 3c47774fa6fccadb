"""The item a function is called on, as the function sees it (``item`` arg)."""

from types import MappingProxyType

from hpxd.core import errors
from hpxd.core.jsonvalues import dump_json

NO_ENVIRON = MappingProxyType({})


class ItemContext:
    """One call of one function: the item plus who called it and from where.

    ``environ`` holds at least ``door`` and ``peer``; doors add ``headers``
    where they have them. ``sink(function_name, value)`` is what the door
    gave the call for ``send`` (None: the door cannot stream).
    """

    __slots__ = ("_node", "item", "session", "environ", "sink", "function")

    def __init__(self, node, item, session, environ=None, sink=None, function=None):
        self._node = node
        self.function = function  # full dotted name of the function being called
        self.item = item
        self.session = session
        self.environ = NO_ENVIRON if environ is None else environ
        self.sink = sink

    name = property(lambda self: self.item.name)
    id = property(lambda self: self.item.id)
    path = property(lambda self: self.item.path)
    fields = property(lambda self: self.item.fields)
    task = property(lambda self: self.item.task)
    scope = property(lambda self: self._node.scope)

    @property
    def records(self):
        """The item's table, only on table-backed items: ``open``, ``count``,
        ``get``, ``insert``, ``update``, ``delete``, ``apply`` (Deferreds;
        ``hpxd.core.records.RecordTable``, docs/records.md)."""
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
        """Send ``data`` to the caller as part of this call's answer.

        Each door has one rule for these values (docs/writing-an-app.md): the
        WebSocket door streams them at once, the TCP door writes them as
        pushes right after the call's reply; on a door that cannot carry
        them this raises ``NotStreamable`` (code 414).
        """
        if self.sink is None:
            door = self.environ.get("door", "this door")
            raise errors.NotStreamable(f"{self.function}: {door} cannot carry values "
                                       "sent with item.send")
        dump_json(data, "values sent with item.send")  # 413 here, not a broken reply later
        self.sink(self.function or self.item.path, data)

    def broadcast(self, action, data=None):
        """Push to every client of every door, on every node. Fires when handed over."""
        return self._node.hub.broadcast(action, data)


class Collector:
    """A call sink that keeps every value sent, in order: for doors that
    answer a call in one piece and return these values with the result."""

    __slots__ = ("values",)

    def __init__(self):
        self.values = []

    def __call__(self, function_name, value):
        self.values.append(value)

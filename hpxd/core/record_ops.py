"""Record operations a door may ask for, run by the dispatcher like calls.

A door never calls the records layer: it asks ``Dispatcher.records(session,
item, op, kwargs, environ)`` and the dispatcher checks the session's
privileges on the item, counts the operation in the metrics, refuses it
while the node quits and saves the session, exactly as for a function
call. The operations (keyword arguments as in hpxd.core.records):

    open(filters, order_by, limit, offset, fields)   view    -> [record, ...]
    count(filters)                                   view    -> int
    aggregate(filters, funcs={field: fn})            view    -> {field: value}
    get(id)                                          view    -> record or None
    apply(insert, update, delete, expect_hash)       create for inserts, edit for
                                                     updates, delete for deletes:
                                                     each kind present needs its
                                                     privilege, or nothing is
                                                     written   -> the new ids

Every operation has a ``full_name`` of ``<item path>:<op>`` (a colon: no
app function is named so) for the metrics' function label.
"""

from hpxd.core import errors
from hpxd.core.records import record_hash

OPERATIONS = {
    "open": (("filters", "order_by", "limit", "offset", "fields"), "view"),
    "count": (("filters",), "view"),
    "aggregate": (("filters", "funcs"), "view"),
    "get": (("id",), "view"),
    "apply": (("insert", "update", "delete", "expect_hash"), None),  # per change kind
}
APPLY_PRIVILEGES = (("insert", "create"), ("update", "edit"), ("delete", "delete"))


class RecordOp:
    """One operation on one table-backed item: shaped like an app
    ``Function`` (``item``, ``name``, ``full_name``, ``fn``, ``check``) so
    the dispatcher runs, counts and settles it the same way."""

    __slots__ = ("item", "name", "full_name", "requires", "_allowed")

    def __init__(self, item, name):
        self.item, self.name = item, name
        self.full_name = f"{item.path}:{name}"
        allowed, self.requires = OPERATIONS[name]
        self._allowed = frozenset(allowed)

    def check(self, args, kwargs):
        if args or type(kwargs) is not dict:
            raise errors.BadArguments(f"{self.full_name} takes keyword arguments only")
        unknown = kwargs.keys() - self._allowed
        if unknown:
            raise errors.BadArguments(f"{self.full_name}: no argument {sorted(unknown)[0]!r} "
                                      f"(arguments: {', '.join(sorted(self._allowed))})")
        if self.name == "get" and "id" not in kwargs:
            raise errors.BadArguments(f"{self.full_name} needs the record's id")

    def privileges(self, kwargs):
        """The privileges this call needs, every one of them."""
        if self.requires is not None:
            return (self.requires,)
        needed = tuple(privilege for key, privilege in APPLY_PRIVILEGES if kwargs.get(key))
        return needed or ("edit",)  # an empty change log: nothing written, still an edit

    def fn(self, ctx, **kwargs):
        table = ctx.records
        if self.name == "get":
            return _with_hash(table.get(kwargs["id"]))
        return getattr(table, self.name)(**kwargs)


def _with_hash(d):
    return d.addCallback(lambda record: record and {"record": record,
                                                    "hash": record_hash(record)})


def item_of(node, item):
    """The item ``item`` names: an Item of the node's task, its id or its
    dotted path ("" is the task); FunctionNotFound when there is none."""
    task = node.task
    found = (task.item_by_id(item) if type(item) is int
             else task.item_by_name(item) if type(item) is str else item)
    if found is None or getattr(found, "task", None) is not task:
        raise errors.FunctionNotFound(f"no item {str(item)[:60]!r}")
    return found


def record_op(node, item, name):
    """The operation ``name`` on ``item`` (an Item, its id or its dotted path)."""
    found = item_of(node, item)
    if not found.fields:
        raise errors.FunctionNotFound(f"item {found.path or found.name!r} has no records")
    if name not in OPERATIONS:
        raise errors.FunctionNotFound(f"no record operation {name!r} "
                                      f"(operations: {', '.join(OPERATIONS)})")
    ops = found.record_ops  # one object per operation: the metrics' key
    if name not in ops:
        ops[name] = RecordOp(found, name)
    return ops[name]

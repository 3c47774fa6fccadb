"""jam.js's record requests as the core's record operations, for ``/api``
(hpxd/doors/web/jam.py): ``OpenQuery`` turns the parameters of jam.js's
``open`` into one ``open`` or ``aggregate``, ``ChangeLog`` the change log
of its ``apply`` into one ``apply``.

Everything is checked here for its shape and then by the records layer
for its meaning (known fields, values of the fields' types): nothing a
client sends becomes SQL.
"""

from hpxd.core import errors

# Jam.py's filter types 1-15 -> the records layer's operators (11, EXACT, is equality)
FILTER_OPERATORS = {1: "eq", 2: "ne", 3: "lt", 4: "le", 5: "gt", 6: "ge", 7: "in", 8: "notin",
                    9: "range", 10: "isnull", 11: "eq", 12: "contains", 13: "startswith",
                    14: "endswith", 15: "contains_all"}
# a record's status in jam.js's change log
INSERTED, MODIFIED_RECORD, DELETED, DETAILS_MODIFIED = 1, 2, 3, 4
# every parameter jam.js's open may send; params without "__" are the app's own
OPEN_PARAMS = frozenset({"__expanded", "__fields", "__open_empty", "__order", "__filters",
                         "__limit", "__offset", "__funcs", "__summary", "__group_by",
                         "__search", "__master_id", "__master_rec_id", "__edit_record_id"})
MAX_FILTERS = 50  # conditions in one open, as the records layer allows
ID_LIMIT = 2 ** 63  # ids, limits and offsets are 64-bit in every database


def bad(text):
    return errors.BadArguments(text)


def short(value, limit=60):
    """``value`` as an error message quotes it."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class OpenQuery:
    """jam.js's ``open`` parameters, checked and turned into one record
    operation: ``open``, or ``aggregate`` when ``__funcs`` asks for
    functions (the paginator's count: ``__summary`` with ``{id: "count"}``)."""

    def __init__(self, params, item):
        if type(params) is not dict:
            raise bad("open takes an object of parameters")
        unknown = sorted(k for k in params if k.startswith("__") and k not in OPEN_PARAMS)
        if unknown:
            raise bad(f"open: no parameter {unknown[0][:60]!r}")
        self.known = {"id", *item.fields}
        for key in ("__group_by", "__master_id", "__master_rec_id"):
            if params.get(key) not in (None, [], False):
                raise bad(f"open: {key} is not supported by hpxd (no grouping, no "
                          "master-detail items)")
        self.fields = self._fields(params.get("__fields"))
        self.filters = self._filters(params.get("__filters"))
        self.order_by = self._order(params.get("__order"))
        limit = self._count(params.get("__limit"), "__limit")
        self.limit = limit or None  # Jam.py's 0: no limit (the records layer caps it)
        self.offset = self._count(params.get("__offset"), "__offset")
        self.empty = params.get("__open_empty") is True
        self.funcs = self._funcs(params.get("__funcs"), params.get("__summary") is True)

    def _fields(self, fields):
        if fields is None:
            return []
        if type(fields) is not list or len(fields) > len(self.known) * 2 or \
                any(type(f) is not str for f in fields):
            raise bad("open: __fields must be a list of field names")
        return fields

    def _filters(self, filters):
        if filters is None:
            return []
        if type(filters) is not list or len(filters) > MAX_FILTERS:
            raise bad(f"open: __filters must be a list of at most {MAX_FILTERS} "
                      "[field, filter type, value] lists")
        out = []
        for entry in filters:
            if type(entry) is not list or len(entry) not in (3, 4):
                raise bad(f"open: a filter is [field, filter type, value], not {short(entry)}")
            field, kind, value = entry[:3]
            operator = FILTER_OPERATORS.get(kind) if type(kind) is int else None
            if operator is None:
                raise bad(f"open: no filter type {short(kind)} (filter types are 1 to 15)")
            if type(field) is not str or field not in self.known:
                raise bad(f"open: no field named {short(field)} (fields: "
                          f"{', '.join(sorted(self.known))})")
            if value is None:
                continue  # Jam.py leaves a filter without a value out
            if operator in ("in", "notin") and type(value) is list:
                value = [v for v in value if v is not None]  # as Jam.py does
            out.append([field, operator, value])
        return out

    @staticmethod
    def _order(order):
        if order is None:
            return []
        if type(order) is not list:
            raise bad("open: __order must be a list of [field, descending] lists")
        out = []
        for entry in order:
            if (type(entry) is not list or len(entry) != 2 or type(entry[0]) is not str
                    or type(entry[1]) is not bool):
                raise bad(f"open: an order is [field, descending], not {short(entry)}")
            out.append(("-" if entry[1] else "") + entry[0])
        return out

    @staticmethod
    def _count(value, what):
        if value is None:
            return 0
        if type(value) is not int or not 0 <= value < ID_LIMIT:
            raise bad(f"open: {what} must be an integer from 0 to 2**63-1, not {short(value)}")
        return value

    def _funcs(self, funcs, summary):
        if funcs is None or funcs == {}:
            return None
        if type(funcs) is not dict:
            raise bad('open: __funcs must be an object {field: "count"|"sum"|"min"|"max"|"avg"}')
        funcs = dict(funcs)
        if not self.fields:
            raise bad("open: __funcs needs __fields")
        if summary:  # Jam.py: the first field of a summary is the count of records
            funcs[self.fields[0]] = "count"
        missing = [f for f in self.fields if f not in funcs]
        if missing:
            raise bad(f"open: with __funcs every field of __fields needs a function "
                      f"({missing[0][:60]!r} has none; hpxd does not group)")
        return funcs

    async def run(self, dispatcher, session, item_id, environ):
        if self.empty:
            return []
        if self.funcs is not None:
            values = await dispatcher.records(session, item_id, "aggregate",
                                              {"filters": self.filters, "funcs": self.funcs},
                                              environ)
            return [[values[f] for f in self.fields]]
        records = await dispatcher.records(
            session, item_id, "open",
            {"filters": self.filters, "order_by": self.order_by, "limit": self.limit,
             "offset": self.offset, "fields": self.fields or None}, environ)
        if not self.fields:
            return [list(record.values()) for record in records]
        return [[record[f] for f in self.fields] for record in records]


class ChangeLog:
    """jam.js's change log (``item.apply``): ``[{fields, expanded, data:
    {log_id: {record, details, old_record}}}, params]``, each record its
    values in ``fields`` order and then ``[status, {}, log_id]``."""

    def __init__(self, params):
        if type(params) is not list or len(params) not in (1, 2):
            raise bad("apply takes [changes, params]")
        if len(params) == 2 and params[1] is not None and type(params[1]) is not dict:
            raise bad("apply: the params must be an object")
        changes = params[0]
        if type(changes) is not dict or type(changes.get("fields")) is not list \
                or type(changes.get("data")) is not dict:
            raise bad("apply: the changes must be {fields: [...], data: {log_id: change}}")
        fields = changes["fields"]
        if any(type(f) is not str for f in fields) or len(set(fields)) != len(fields) \
                or "id" not in fields:
            raise bad("apply: the fields of the changes must be distinct names, id among them")
        self.inserts, self.updates, self.deletes = [], [], []
        self.order = []  # (log_id, index of an insert, or the record's id)
        for log_id, change in changes["data"].items():
            self._take(log_id, change, fields)

    def _take(self, log_id, change, fields):
        if type(change) is not dict or type(change.get("record")) is not list:
            raise bad(f"apply: change {log_id[:20]!r} must be {{record, details, old_record}}")
        record = change["record"]
        if len(record) != len(fields) + 1 or type(record[-1]) is not list or not record[-1]:
            raise bad(f"apply: the record of change {log_id[:20]!r} must hold a value for "
                      "each field, then [status, {}, log_id]")
        if change.get("details") not in (None, {}):
            raise bad("apply: details (master-detail changes) are not supported by hpxd")
        values = dict(zip(fields, record[:-1]))
        record_id = values.pop("id")
        status = record[-1][0]
        if type(status) is not int:
            raise bad(f"apply: change {log_id[:20]!r}: the record status must be 1, 2, 3 or 4")
        if status == INSERTED:
            if record_id is not None:
                raise bad(f"apply: an inserted record's id must be null, not {short(record_id)}")
            self.order.append((log_id, len(self.inserts), True))
            self.inserts.append(values)
            return
        if type(record_id) is not int:
            raise bad(f"apply: change {log_id[:20]!r}: a record id must be an integer, not "
                      f"{short(record_id)}")
        if status == MODIFIED_RECORD:
            self.updates.append({"id": record_id, **values})
        elif status == DELETED:
            self.deletes.append(record_id)
        elif status != DETAILS_MODIFIED:  # 4: only its details changed, and there are none
            raise bad(f"apply: change {log_id[:20]!r}: no record status {short(status)} "
                      "(1 inserted, 2 modified, 3 deleted, 4 details modified)")
        self.order.append((log_id, record_id, False))

    def kwargs(self):
        return {"insert": self.inserts, "update": self.updates, "delete": self.deletes}

    def answer(self, new_ids):
        """jam.js's ``changes``: each log id with its record's id."""
        return [{"log_id": log_id, "rec_id": new_ids[at] if inserted else at, "details": []}
                for log_id, at, inserted in self.order]

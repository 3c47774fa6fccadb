"""What a client may ask of a table, checked and turned into SQLAlchemy
expressions.

Nothing a client sends becomes SQL text: field names must be the table's
own (looked up in a dict, so the name used is ours), operators one of
``OPERATORS``, values are checked against the field's type and bound as
parameters. Everything that is not understood is refused with BadArguments.
"""

import operator

from sqlalchemy import and_, func, literal

from hpxd.core import errors

OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "notin", "range", "contains",
             "startswith", "endswith", "contains_all", "isnull")
AGGREGATES = ("count", "sum", "min", "max", "avg")
MAX_FILTERS = 50     # conditions in one filters list
MAX_IN_VALUES = 1000  # values of one "in" (each is a bound parameter)
LIKE_ESCAPE = "/"


def _comparison(op):
    compare = getattr(operator, op)

    def build(column, value):
        if value is None:  # eq / ne only (others refuse null before this)
            return column.is_(None) if op == "eq" else column.is_not(None)
        # A bound parameter of the column's type, also for true/false, which
        # SQLAlchemy would otherwise only compare with IS.
        return compare(column, literal(value, column.type))
    return build


def _like(column, value, prefix, suffix="%"):
    # Wildcards in the client's text are escaped: "50%" finds a literal "%".
    # ilike folds ASCII letters only on both databases (see record_values).
    escaped = (value.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%")
               .replace("_", LIKE_ESCAPE + "_"))
    return column.ilike(prefix + escaped + suffix, escape=LIKE_ESCAPE)


BUILD = {
    "eq": _comparison("eq"), "ne": _comparison("ne"),
    "lt": _comparison("lt"), "le": _comparison("le"),
    "gt": _comparison("gt"), "ge": _comparison("ge"),
    "in": lambda column, values: column.in_(values),
    "notin": lambda column, values: column.not_in(values),
    "range": lambda column, bounds: column.between(*bounds),
    "contains": lambda column, value: _like(column, value, "%"),
    "startswith": lambda column, value: _like(column, value, ""),
    "endswith": lambda column, value: _like(column, value, "%", ""),
    # every word of the text somewhere in the field
    "contains_all": lambda column, words: and_(*[_like(column, w, "%") for w in words]),
    "isnull": lambda column, yes: column.is_(None) if yes else column.is_not(None),
}


class Columns:
    """The columns of one table as a client may name them: ``id`` and the
    item's fields, each with its FieldType."""

    def __init__(self, path, table, types):
        self.path = path            # the item's dotted name, for messages
        self.table = table          # sqlalchemy.Table
        self.types = types          # name -> FieldType, "id" first

    def bad(self, text):
        return errors.BadArguments(f"{self.path}: {text}")

    def column(self, name):
        if type(name) is not str or name not in self.types:
            raise self.bad(f"no field named {_short(name)} (fields: {', '.join(self.types)})")
        return self.table.c[name]

    def value(self, name, value):
        """``value`` as bound for field ``name``; None is NULL."""
        if value is None:
            return None
        try:
            return self.types[name].check(value)
        except ValueError as e:
            raise self.bad(f"field {name!r} must be {e}, not {_short(value)}") from None

    def values(self, values, allow_id=False):
        """A record's values from a client: an object of known fields."""
        if type(values) is not dict:
            raise self.bad("record values must be an object")
        for name in values:
            if name == "id" and not allow_id:
                raise self.bad("the id is given by the database, not in the values")
            self.column(name)
        return {name: self.value(name, v) for name, v in values.items()}

    def where(self, filters):
        """``[[field, op, value], ...]`` (all must hold) as a list of clauses."""
        if filters is None:
            return []
        if type(filters) is not list or len(filters) > MAX_FILTERS:
            raise self.bad(f"filters must be a list of at most {MAX_FILTERS} "
                           "[field, operator, value] lists")
        return [self._condition(f) for f in filters]

    def _condition(self, condition):
        if type(condition) not in (list, tuple) or len(condition) != 3:
            raise self.bad(f"a filter must be [field, operator, value], not {_short(condition)}")
        name, op, value = condition
        column = self.column(name)
        if type(op) is not str or op not in BUILD:
            raise self.bad(f"no operator {_short(op)} (operators: {', '.join(OPERATORS)})")
        return BUILD[op](column, self._operand(name, op, value))

    def _operand(self, name, op, value):
        kind = self.types[name].name
        if op == "isnull":
            if type(value) is not bool:
                raise self.bad("isnull takes true or false")
            return value
        if op in ("in", "notin"):
            if type(value) is not list or len(value) > MAX_IN_VALUES:
                raise self.bad(f"{op} takes a list of at most {MAX_IN_VALUES} values")
            return [self._not_null(name, op, v) for v in value]
        if op == "range":
            if type(value) is not list or len(value) != 2:
                raise self.bad("range takes a list [low, high]")
            return [self._not_null(name, op, v) for v in value]
        if op in ("contains", "startswith", "endswith", "contains_all") and kind != "text":
            raise self.bad(f"{op} works on text fields; {name!r} is {kind}")
        if op == "contains_all":
            words = value.split() if type(value) is str else None
            if not words or len(words) > MAX_FILTERS:
                raise self.bad(f"contains_all takes a text of 1 to {MAX_FILTERS} words")
            return words
        if op in ("eq", "ne"):
            return self.value(name, value)
        return self._not_null(name, op, value)

    def _not_null(self, name, op, value):
        if value is None:
            raise self.bad(f"{op} needs a value, not null (use isnull)")
        return self.value(name, value)

    def order(self, order_by):
        """``["-price", "name"]``: descending with a "-". NULL sorts first going
        up and last going down, and ``id`` breaks ties, on both databases."""
        if order_by is None:
            order_by = []
        if type(order_by) is not list or len(order_by) > len(self.types):
            raise self.bad("order_by must be a list of field names, each with an "
                           "optional leading '-'")
        clauses, named = [], set()
        for entry in order_by:
            descending = type(entry) is str and entry.startswith("-")
            name = entry[1:] if descending else entry
            column = self.column(name)
            named.add(name)
            clauses.append(column.desc().nulls_last() if descending
                           else column.asc().nulls_first())
        if "id" not in named:
            clauses.append(self.table.c.id.asc())
        return clauses

    def chosen(self, fields):
        """The columns ``open`` returns: ``id`` and ``fields`` (None: all)."""
        if fields is None:
            return list(self.table.columns)
        if type(fields) is not list:
            raise self.bad("fields must be a list of field names")
        names = ["id"] + [name for name in dict.fromkeys(fields) if name != "id"]
        return [self.column(name) for name in names]

    def aggregates(self, funcs):
        """``{field: "count"|"sum"|"min"|"max"|"avg"}`` as labelled SQL
        expressions; sum and avg on number fields only."""
        if type(funcs) is not dict or not funcs or len(funcs) > len(self.types):
            raise self.bad("funcs must be an object {field: function} naming the table's "
                           f"fields (functions: {', '.join(AGGREGATES)})")
        out = []
        for name, fn in funcs.items():
            column = self.column(name)
            if type(fn) is not str or fn not in AGGREGATES:
                raise self.bad(f"no function {_short(fn)} (functions: {', '.join(AGGREGATES)})")
            if fn in ("sum", "avg") and self.types[name].name not in ("integer", "real"):
                raise self.bad(f"{fn} works on number fields; {name!r} is "
                               f"{self.types[name].name}")
            out.append(getattr(func, fn)(column).label(name))
        return out

    def record_id(self, record_id):
        if type(record_id) is not int:
            raise self.bad(f"a record id must be an integer, not {_short(record_id)}")
        return record_id


def non_negative(value, what):
    if type(value) is not int or value < 0:
        raise errors.BadArguments(f"{what} must be an integer >= 0, not {_short(value)}")
    return value


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."

"""Forms declared on table-backed items: the model the form door renders.

A form is a list of fields of one item's table, each with a kind (how it is
edited), checks, and rules that decide, from the current values, what the
client shows (QFQ's ``form-update`` and ``element-update``)::

    contact = contacts.form("contact", [
        FormField("name", required=True, max_length=100),
        FormField("email", pattern=r"[^@\\s]+@[^@\\s]+\\.[^@\\s]+",
                  pattern_message="is not an e-mail address"),
        "has_company",                    # the kind from the table: a checkbox
        "company",
        FormField("country", "select", options_from=("countries", "name")),
    ], lock="exclusive")

    @contact.rule
    def company_when_ticked(values):
        return {"company": {"hidden": not values["has_company"]}}

``validate(values)`` gives the values as the records layer takes them, or
the ``(field, message)`` errors; ``evaluate(values)`` runs the rules;
``describe()`` is the form as plain JSON. Nothing here does I/O: options
from another item's records are only described (the door fetches them
through the dispatcher). docs/forms.md is the guide.
"""

import datetime
import math
import re

from twisted.logger import Logger

from hpxd.core import errors

log = Logger()

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LOCK_MODES = ("exclusive", "advisory", "none")
MAX_LENGTH = 10_000        # characters of a text or textarea value unless the field says
MAX_SCALAR_LENGTH = 100    # characters of a number, date, choice, checkbox or file value
MAX_UNKNOWN_REPORTED = 10  # errors listed for fields the form does not have
INTEGER_RE = re.compile(r"\s*[-+]?[0-9]+\s*")
REAL_RE = re.compile(r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
FILE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")  # a file store id (hpxd.core.file_store)
UPDATE_KEYS = ("hidden", "disabled", "required", "value")
ELEMENT_KEYS = ("attr", "content")

# kind -> the table field types it may edit
KINDS = {
    "text": ("text",),
    "textarea": ("text",),
    "number": ("integer", "real"),
    "date": ("date",),
    "checkbox": ("boolean",),
    "radio": ("text", "integer"),
    "select": ("text", "integer"),
    "file": ("text",),  # holds the id of a file in the file store
}
# table field type -> the kind a field gets when none is named
DEFAULT_KIND = {"text": "text", "integer": "number", "real": "number",
                "boolean": "checkbox", "date": "date"}
TRUE_TEXT = frozenset(("on", "true", "1", "yes"))
FALSE_TEXT = frozenset(("", "off", "false", "0", "no"))


class FormField:
    """One field of a form; ``name`` is a field of the item's table.

    ``kind``: see KINDS (None: from the table field's type). ``min`` and
    ``max`` bound a number or a date; ``pattern`` (a regular expression the
    whole value must match), ``pattern_message`` and ``max_length`` check
    text; ``options`` lists a radio's or select's values (each a value or a
    ``(value, text)`` pair); ``options_from=(item path, field to show)``
    takes them from another item's records; ``typeahead=(item path, field)``
    suggests a text field's values from another item's records; ``check``
    is a function ``(value, values) -> message or None``."""

    def __init__(self, name, kind=None, *, label=None, required=False, min=None, max=None,
                 pattern=None, pattern_message=None, max_length=None, options=None,
                 options_from=None, typeahead=None, check=None):
        self.name, self.kind, self.required = name, kind, required
        self.label = label or (name.replace("_", " ").capitalize() if isinstance(name, str)
                               else name)
        self.min, self.max = min, max
        self.pattern, self.pattern_message = pattern, pattern_message
        self.max_length = max_length
        self.options, self.options_from, self.typeahead = options, options_from, typeahead
        self.checks = [check] if check is not None else []
        self.type = None  # the table field's type, set when the form binds it

    # -- declaration -----------------------------------------------------------------

    def bind(self, form, item):
        """Check this field against ``item``'s table; ValueError says what is wrong."""
        where = f"form {form!r}, field {self.name!r}"
        if self.type is not None:
            raise ValueError(f"{where}: this FormField is in another form already; "
                             "make one for each form")
        if not isinstance(self.name, str) or self.name not in item.fields:
            raise ValueError(f"form {form!r}: {self.name!r} is not a field of item "
                             f"{item.path!r} (fields: {', '.join(item.fields)})")
        self.type = item.fields[self.name]
        if self.kind is None:
            if self.type not in DEFAULT_KIND:
                raise ValueError(f"{where}: a {self.type} field has no form kind")
            self.kind = DEFAULT_KIND[self.type]
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {list(KINDS)}, not {self.kind!r}")
        if self.type not in KINDS[self.kind]:
            raise ValueError(f"{where}: a {self.kind} edits a field of type "
                             f"{' or '.join(KINDS[self.kind])}, not {self.type}")
        if not isinstance(self.label, str) or type(self.required) is not bool:
            raise ValueError(f"{where}: label must be a string and required true or false")
        self._bind_range(where)
        self._bind_text(where)
        self._bind_options(where, item)
        if self.typeahead is not None and self.kind != "text":
            raise ValueError(f"{where}: typeahead suggests values of a text, not a {self.kind}")
        self.typeahead = self._source(where, item, self.typeahead, "typeahead", ("text",))
        if any(not callable(c) for c in self.checks):
            raise ValueError(f"{where}: check must be a function (value, values)")

    def _bind_range(self, where):
        if self.min is None and self.max is None:
            return
        if self.kind not in ("number", "date"):
            raise ValueError(f"{where}: min and max bound a number or a date, not a {self.kind}")
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None:
                converted, problem = self._convert(value)
                if problem:
                    raise ValueError(f"{where}: {bound} {value!r} {problem}")
                setattr(self, bound, converted)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{where}: min {self.min} is more than max {self.max}")

    def _bind_text(self, where):
        if self.pattern is not None or self.max_length is not None:
            if self.kind not in ("text", "textarea"):
                raise ValueError(f"{where}: pattern and max_length check text, not a {self.kind}")
        if self.pattern is not None:
            try:
                self.pattern = re.compile(self.pattern)
            except (re.error, TypeError) as e:
                raise ValueError(f"{where}: bad pattern {self.pattern!r}: {e}") from None
        if self.max_length is None:
            self.max_length = MAX_LENGTH if self.kind in ("text", "textarea") else MAX_SCALAR_LENGTH
        elif type(self.max_length) is not int or self.max_length < 1:
            raise ValueError(f"{where}: max_length must be a whole number > 0")

    def _bind_options(self, where, item):
        choice = self.kind in ("radio", "select")
        if not choice and (self.options is not None or self.options_from is not None):
            raise ValueError(f"{where}: options belong to a radio or a select, not a {self.kind}")
        if choice and (self.options is None) == (self.options_from is None):
            raise ValueError(f"{where}: a {self.kind} needs options or options_from (one of them)")
        if self.options is not None:
            self.options = self._option_list(where)
        # a record's id is the value when the field is an integer, else the shown text
        self.options_from = self._source(where, item, self.options_from, "options_from",
                                         ("text",) if self.type == "text" else None)

    def _option_list(self, where):
        if not isinstance(self.options, (list, tuple)) or not self.options:
            raise ValueError(f"{where}: options must be a non-empty list")
        options = []
        for entry in self.options:
            value, text = entry if isinstance(entry, tuple) and len(entry) == 2 else (entry, None)
            wanted = int if self.type == "integer" else str
            if type(value) is not wanted:
                raise ValueError(f"{where}: option {value!r} is not a {self.type} value")
            options.append({"value": value, "text": str(value) if text is None else str(text)})
        if len({o["value"] for o in options}) != len(options):
            raise ValueError(f"{where}: options repeat a value")
        return options

    def _source(self, where, item, source, what, show_types):
        """``(item path, field)`` of another item, checked: the item must be declared."""
        if source is None:
            return None
        if not (isinstance(source, tuple) and len(source) == 2
                and all(isinstance(s, str) for s in source)):
            raise ValueError(f"{where}: {what} must be (item path, field name)")
        path, show = source
        other = item.task.item_by_name(path)
        if other is None or not other.fields:
            raise ValueError(f"{where}: {what} names {path!r}, which is not a table-backed "
                             "item declared before this form")
        if show not in other.fields:
            raise ValueError(f"{where}: item {path!r} has no field {show!r}")
        if show_types is not None and other.fields[show] not in show_types:
            raise ValueError(f"{where}: {what} shows {path}.{show}, a {other.fields[show]} "
                             "field; this field stores it, so it must be text")
        key = "id" if self.type == "integer" and what == "options_from" else show
        return {"item": path, "show": show, "key": key}

    # -- values ----------------------------------------------------------------------

    def empty(self):
        return False if self.kind == "checkbox" else "" if self.kind in ("text", "textarea") else None

    def is_empty(self, value):
        return value is None or (isinstance(value, str) and not value.strip())

    def clean(self, value):
        """``(value as the records layer takes it, None)`` or ``(None, problem)``."""
        if value is None or (value == "" and self.kind != "checkbox"):
            return self.empty(), None
        if isinstance(value, str) and len(value) > self.max_length:
            return None, f"is longer than {self.max_length} characters"
        return self._convert(value)

    def _convert(self, value):
        convert = getattr(self, "_" + self.kind.replace("textarea", "text"))
        try:
            return convert(value), None
        except ValueError as e:
            return None, str(e)

    def _text(self, value):
        if type(value) is not str:
            raise ValueError("must be text")
        if "\x00" in value:  # the records layer refuses NUL too (PostgreSQL cannot store it)
            raise ValueError("must not contain NUL characters")
        return value

    def _number(self, value):
        if self.type == "integer":
            if type(value) is str and INTEGER_RE.fullmatch(value):
                value = int(value)
            if type(value) is not int or not -2 ** 63 <= value < 2 ** 63:
                raise ValueError("must be a whole number")
            return value
        if type(value) is str:
            if not REAL_RE.fullmatch(value):  # float() also takes "1_0", "inf", other digits
                raise ValueError("must be a number")
            value = float(value)
        if type(value) not in (int, float) or not math.isfinite(value):
            raise ValueError("must be a number")
        return float(value)

    def _date(self, value):
        if type(value) is datetime.date:
            return value.isoformat()
        try:
            if type(value) is str and DATE_RE.fullmatch(value):  # not "2024-W01-1"
                return datetime.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
        raise ValueError("must be a date like 2024-01-05")

    def _checkbox(self, value):
        if type(value) is bool:
            return value
        if type(value) is str and value.strip().lower() in TRUE_TEXT | FALSE_TEXT:
            return value.strip().lower() in TRUE_TEXT
        raise ValueError("must be ticked or not (true or false)")

    def _choice(self, value):
        if self.type == "integer":
            value = self._number(value)
        elif type(value) is not str:
            raise ValueError("must be one of the choices")
        if self.options is not None and value not in {o["value"] for o in self.options}:
            raise ValueError("must be one of the choices")
        return value

    _radio = _select = _choice

    def _file(self, value):
        if type(value) is not str or not FILE_ID_RE.fullmatch(value):
            raise ValueError("must be the id of an uploaded file")
        return value

    def problem(self, value, values, choices, guard):
        """What is wrong with a clean, non-empty ``value``, or None;
        ``guard(fn, *args)`` runs the app's check functions."""
        # (a clean date is an ISO string: those compare as the dates do)
        if self.min is not None and value < self.min:
            return f"must be at least {_show(self.min)}"
        if self.max is not None and value > self.max:
            return f"must be at most {_show(self.max)}"
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return self.pattern_message or "is not in the expected form"
        if choices is not None and value not in choices:
            return "must be one of the choices"
        for check in self.checks:
            message = guard(check, value, values)
            if message is not None:
                if not isinstance(message, str):
                    guard(_not_a_message, check, message)
                return message
        return None

    def describe(self):
        return {"name": self.name, "kind": self.kind, "type": self.type, "label": self.label,
                "required": self.required, "min": self.min, "max": self.max,
                "pattern": self.pattern.pattern if self.pattern else None,
                "max_length": self.max_length if self.kind in ("text", "textarea") else None,
                "options": self.options, "options_from": self.options_from,
                "typeahead": self.typeahead}


class Form:
    """A form on a table-backed item (``item.form(...)``)."""

    def __init__(self, item, name, fields, lock="exclusive", caption=None, close_url=None):
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValueError(f"form name {name!r} must be a Python identifier")
        if not item.fields:
            raise ValueError(f"form {name!r}: item {item.path or item.name!r} has no table "
                             "(declare it with fields)")
        if lock not in LOCK_MODES:
            raise ValueError(f"form {name!r}: lock must be one of {list(LOCK_MODES)}, not {lock!r}")
        if caption is not None and not isinstance(caption, str):
            raise ValueError(f"form {name!r}: caption must be a string")
        self.item, self.name, self.lock = item, name, lock
        self.caption = caption or name.replace("_", " ").capitalize()
        if close_url is not None and not (isinstance(close_url, str)
                                          and close_url.startswith("/")
                                          and not close_url.startswith("//")
                                          and "\\" not in close_url):
            raise ValueError(f"form {name!r}: close_url must be a path on this server "
                             "('/forms/...'), not another site")
        self.close_url = close_url  # where "save,close" and a delete lead; None: back
        self.table_views = {}  # name -> TableView (form.table_view)
        if not isinstance(fields, (list, tuple)):
            raise ValueError(f"form {name!r}: fields must be a list of FormField objects "
                             "or field names")
        self.fields = {}
        for field in fields:
            field = FormField(field) if isinstance(field, str) else field
            if not isinstance(field, FormField):
                raise ValueError(f"form {name!r}: fields are FormField objects or field "
                                 f"names, not {field!r}")
            if field.name in self.fields:
                raise ValueError(f"form {name!r}: field {field.name!r} is listed twice")
            field.bind(name, item)
            self.fields[field.name] = field
        if not self.fields:
            raise ValueError(f"form {name!r}: needs at least one field")
        self.rules = []
        self.downloads = {}  # name -> hpxd.core.downloads.Download (download())

    # -- declaration -----------------------------------------------------------------

    def table_view(self, name, columns, *, order_field=None, caption=None):
        """A page ``/forms/<name>`` listing the item's records, one row per
        record with a link to this form; ``order_field`` (an integer field
        of the table) keeps the rows' order and lets users reorder them by
        drag and drop. View names are unique among the task's forms and views."""
        view = TableView(self, name, columns, order_field, caption)
        if self.item.task.form_by_name(name) is not None or name in self.item.task._views:
            raise ValueError(f"the task already has a form or table view {name!r}")
        self.table_views[name] = self.item.task._views[name] = view
        return view

    def rule(self, fn):
        """``@form.rule``: ``fn(values)`` returns ``{field: {"hidden": bool,
        "disabled": bool, "required": bool, "value": v}, "#element_id":
        {"attr": {name: text or None}, "content": text}}`` (any subset)."""
        if not callable(fn):
            raise ValueError(f"form {self.name!r}: a rule must be a function (values)")
        self.rules.append(fn)
        return fn

    def validator(self, name):
        """``@form.validator("email")``: ``fn(value, values)`` returns an
        error message or None; runs on non-empty values that passed the
        field's own checks."""
        if name not in self.fields:
            raise ValueError(f"form {self.name!r} has no field {name!r}")

        def register(fn):
            if not callable(fn):
                raise ValueError(f"form {self.name!r}: a validator must be a function")
            self.fields[name].checks.append(fn)
            return fn
        return register

    def download(self, name, mode="file", *, field=None, fields=None, path=None, paths=None,
                 client_path=None, width=None, tail=None, output="raw", filename=None,
                 requires="view"):
        """Declare download ``name`` of this form (QFQ's ``download``; modes
        file, zip, thumbnail, monitor, pdf, excel): its sources are the
        files of file fields (``field``/``fields``), files under the task's
        download roots (``path``/``paths``, written ``"root:relative"``) or
        one path the client sends under root ``client_path``. Checked now
        (ValueError); hpxd.core.downloads.produce makes it. docs/forms.md."""
        from hpxd.core.downloads import Download  # downloads imports files: not at load
        if name in self.downloads:
            raise ValueError(f"form {self.name!r} already has a download {name!r}")
        self.downloads[name] = Download(
            self, name, mode, field=field, fields=fields, path=path, paths=paths,
            client_path=client_path, width=width, tail=tail, output=output,
            filename=filename, requires=requires)
        return self.downloads[name]

    # -- values ----------------------------------------------------------------------

    def validate(self, values, choices=None):
        """The values to store (every field of the form but those a rule
        disables), or a list of ``(field, message)`` errors. ``choices``:
        ``{field: allowed values}`` the door fetched for fields whose
        options come from records (unchecked without)."""
        if not isinstance(values, dict):
            return [("", "the form's values must be an object of field values")]
        problems = [(_short(name), "is not a field of this form")
                    for name in values if name not in self.fields][:MAX_UNKNOWN_REPORTED]
        clean = {}
        for name, field in self.fields.items():
            value, problem = field.clean(values.get(name))
            if problem:
                problems.append((name, f"{field.label} {problem}"))
            clean[name] = value
        if problems:
            return problems
        state = self._state(clean)
        for name, field in self.fields.items():
            shown, value = state[name], clean[name]
            if shown["disabled"]:
                continue
            if field.is_empty(value) or value is False:
                if shown["required"] and not shown["hidden"]:
                    problems.append((name, f"{field.label} is required"))
                continue
            problem = field.problem(value, dict(clean), (choices or {}).get(name), self._guarded)
            if problem:
                problems.append((name, f"{field.label} {problem}"))
        # A disabled field is not the user's input (browsers do not send
        # it): the record keeps the value it has.
        return problems or {name: value for name, value in clean.items()
                            if not state[name]["disabled"]}

    def evaluate(self, values):
        """The rules' answer to ``values`` in the QFQ seed's shapes:
        ``{"form-update": [one entry per field], "element-update": {id: ...}}``.
        Rules see every field, typed (None where a value does not convert)."""
        if not isinstance(values, dict):
            raise errors.BadArguments(f"form {self.name}: values must be an object")
        unknown = [name for name in values if name not in self.fields]
        if unknown:
            raise errors.BadArguments(f"form {self.name}: no field {_short(unknown[0])}")
        typed = {name: field.clean(values.get(name))[0] for name, field in self.fields.items()}
        changes, elements = self._run_rules(typed)
        update = []
        for name, field in self.fields.items():
            entry = {"form-element": name, "hidden": False, "disabled": False,
                     "required": field.required}
            entry.update(changes.get(name, {}))
            update.append(entry)
        return {"form-update": update, "element-update": elements}

    def _state(self, typed):
        changes, _ = self._run_rules(typed)
        return {name: {"hidden": False, "disabled": False, "required": field.required,
                       **changes.get(name, {})} for name, field in self.fields.items()}

    def _run_rules(self, typed):
        """Every rule's changes merged in declaration order (later ones win)."""
        changes, elements = {}, {}
        for rule in self.rules:
            answer = self._guarded(rule, dict(typed))
            self._guarded(self._merge, rule, answer, changes, elements)
        return changes, elements

    def _merge(self, rule, answer, changes, elements):
        if answer is None:
            return
        if not isinstance(answer, dict):
            raise TypeError(f"rule {rule.__name__} returned {type(answer).__name__}, not a dict")
        for key, change in answer.items():
            if not isinstance(change, dict):
                raise TypeError(f"rule {rule.__name__}: {key!r} must map to a dict")
            if isinstance(key, str) and key.startswith("#") and len(key) > 1:
                _merge_element(rule, elements.setdefault(key[1:], {}), change)
            elif key in self.fields:
                changes.setdefault(key, {}).update(_field_change(rule, key, change))
            else:
                raise TypeError(f"rule {rule.__name__}: {key!r} is neither a field of the "
                                "form nor an '#element_id'")

    def _guarded(self, fn, *args):
        """``fn(*args)``; an exception is the app's bug: logged, and the
        client gets error 100 without its text."""
        try:
            return fn(*args)
        except Exception:
            log.failure("form {form}: {fn} failed", form=self.name,
                        fn=getattr(fn, "__name__", repr(fn)))
            raise errors.UnhandledError(f"form {self.name}: the app failed to check "
                                        "these values") from None

    def describe(self):
        return {"name": self.name, "caption": self.caption, "item": self.item.path,
                "item_id": self.item.id, "lock": self.lock, "close_url": self.close_url,
                "table_views": list(self.table_views),
                "rules": bool(self.rules),  # false: nothing changes as values change
                "fields": [f.describe() for f in self.fields.values()]}

    def __repr__(self):
        return f"<Form {self.name!r} on {self.item.path!r}>"


VIEW_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


class TableView:
    """A list of a form's records (``form.table_view``): ``columns`` are
    fields of the item's table, ``order_field`` an integer field that
    holds the rows' order (drag and drop), or None (ordered by id)."""

    def __init__(self, form, name, columns, order_field=None, caption=None):
        if not isinstance(name, str) or not VIEW_NAME_RE.match(name):
            raise ValueError(f"table view name {name!r} must be letters, digits, '_' or '-'")
        where = f"table view {name!r}"
        fields = form.item.fields
        if not isinstance(columns, (list, tuple)) or not columns or any(
                c not in fields for c in columns):
            raise ValueError(f"{where}: columns must be a non-empty list of fields of "
                             f"{form.item.path!r} ({', '.join(fields)})")
        if order_field is not None and fields.get(order_field) != "integer":
            raise ValueError(f"{where}: order_field must be an integer field of the table")
        if caption is not None and not isinstance(caption, str):
            raise ValueError(f"{where}: caption must be a string")
        self.form, self.name, self.columns = form, name, list(columns)
        self.order_field = order_field
        self.caption = caption or form.item.caption

    def labels(self):
        """Each column's heading: the form field's label, else the field's name."""
        return [self.form.fields[c].label if c in self.form.fields
                else c.replace("_", " ").capitalize() for c in self.columns]

    def describe(self):
        return {"name": self.name, "form": self.form.name, "caption": self.caption,
                "columns": self.columns, "order_field": self.order_field}


def _not_a_message(check, message):
    raise TypeError(f"check {check.__name__} returned {type(message).__name__}, "
                    "not a message or None")


def _field_change(rule, name, change):
    out = {}
    for key, value in change.items():
        if key not in UPDATE_KEYS:
            raise TypeError(f"rule {rule.__name__}: {name}: {key!r} is not one of {UPDATE_KEYS}")
        if key != "value" and type(value) is not bool:
            raise TypeError(f"rule {rule.__name__}: {name}: {key} must be true or false")
        out[key] = _wire_value(rule, name, value) if key == "value" else value
    return out


def _wire_value(rule, name, value):
    if isinstance(value, datetime.date):
        return value.isoformat()
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, list) and all(isinstance(o, dict) and "value" in o
                                       and set(o) <= {"value", "text", "selected"}
                                       for o in value):
        return [dict(o) for o in value]
    raise TypeError(f"rule {rule.__name__}: {name}: value must be a scalar or a list of "
                    '{"value", "text", "selected"} options')


def _merge_element(rule, entry, change):
    for key, value in change.items():
        if key == "content" and isinstance(value, str):
            entry["content"] = value
        elif key == "attr" and isinstance(value, dict) and all(
                isinstance(k, str) and (v is None or isinstance(v, str))
                for k, v in value.items()):
            entry.setdefault("attr", {}).update(value)
        else:
            raise TypeError(f"rule {rule.__name__}: element changes are 'attr' "
                            "({name: text or None}) and 'content' (text), not "
                            f"{key!r}: {type(value).__name__}")


def _show(bound):
    """A bound as people write it: 0, not 0.0."""
    return int(bound) if type(bound) is float and bound.is_integer() else bound


def _short(value, limit=64):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"

"""The application: a task tree of items with exposed server functions.

This is the public API (re-exported by ``hpxd.app``). Only functions
registered with ``@item.function`` are callable; nothing else on an item is
reachable by name from any door.
"""

import importlib
import inspect
import os
import re
import sys

from hpxd.core import errors
from hpxd.core.auth import PRIVILEGES
from hpxd.core.forms import Form
from hpxd.core.processes import Process

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Field types of table-backed items; their columns and values: hpxd.core.record_values.
FIELD_TYPES = ("text", "integer", "real", "boolean", "date", "datetime")


class Function:
    """An exposed function. Its signature is read once, at registration, so
    the common call (keyword arguments that name every parameter) is checked
    with two set operations instead of ``Signature.bind``."""

    __slots__ = ("item", "name", "fn", "requires", "get", "signature", "full_name",
                 "_allowed", "_required", "_simple", "_positional")

    def __init__(self, item, name, fn, requires="view", get=False):
        self.item, self.name, self.fn = item, name, fn
        self.requires, self.get = requires, get
        self.signature = inspect.signature(fn)
        self.full_name = name if item.is_task else f"{item.path}.{name}"
        params = list(self.signature.parameters.values())[1:]  # [0] is the item
        kinds = {p.kind for p in params}
        # Functions with *args, **kwargs or positional-only parameters take the
        # general path through Signature.bind.
        self._simple = kinds <= {inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                 inspect.Parameter.KEYWORD_ONLY}
        self._allowed = frozenset(p.name for p in params)
        self._required = frozenset(p.name for p in params if p.default is p.empty)
        # Positional calls alone (the WebSocket door's "data": [a, b]) bind
        # when their count lies in this range: from the last required
        # positional parameter to the last positional one. None when a
        # keyword-only parameter is required (no positional call binds).
        positional = [p for p in params if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]
        needed = [i + 1 for i, p in enumerate(positional) if p.default is p.empty]
        required_keywords = any(p.default is p.empty for p in params
                                if p.kind == inspect.Parameter.KEYWORD_ONLY)
        self._positional = None if required_keywords else (max(needed, default=0),
                                                          len(positional))

    def describe(self):
        """This function as clients see it (``Dispatcher.functions``)."""
        params = list(self.signature.parameters.values())[1:]
        return {"name": self.full_name, "requires": self.requires,
                "parameters": [{"name": p.name, "required": p.default is p.empty
                                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
                               for p in params],
                "doc": inspect.getdoc(self.fn) or ""}

    def check(self, args, kwargs):
        """Raise BadArguments, naming the function, unless ``fn(item, *args,
        **kwargs)`` binds to the signature. Nothing runs."""
        if self._simple:
            if not args:
                keys = kwargs.keys()
                if keys == self._allowed or self._required <= keys <= self._allowed:
                    return
            elif not kwargs and self._positional is not None:
                least, most = self._positional
                if least <= len(args) <= most:
                    return
        try:
            self.signature.bind(None, *args, **kwargs)
        except TypeError as e:
            raise errors.BadArguments(f"{self.full_name}: {e}") from None


POSITIONAL = "*args"  # positional arguments inside a keyword object: no parameter name


def arguments(data):
    """A door's JSON arguments as ``(args, kwargs)``: a list is positional,
    an object is keyword (its ``"*args"`` list, if any, positional), null
    (or absent) is none, and any other value (a string, a number, a bool)
    is the one positional argument, as Igor hands ``data`` to a handler."""
    if data is None:
        return (), {}
    if type(data) is dict:
        if POSITIONAL not in data:
            return (), data
        kwargs = dict(data)
        args = kwargs.pop(POSITIONAL)
        if type(args) is not list:
            raise errors.BadArguments(f'"{POSITIONAL}" must be a list')
        return args, kwargs
    if type(data) is list:
        return data, {}
    return (data,), {}


class Item:
    """A node of the task tree; table-backed when it has ``fields``."""

    def __init__(self, task, parent, name, fields=None, caption=None):
        if not NAME_RE.match(name):
            raise ValueError(f"item name {name!r} must be a Python identifier")
        if caption is not None and not isinstance(caption, str):
            raise ValueError(f"item {name!r}: caption must be a string")
        self.task = task or self
        self.parent = parent
        self.name = name
        # Dotted name below the task ("catalog", "catalog.parts"; "" for the
        # task), fixed at birth since names never change.
        self.path = "" if parent is None else (
            name if parent.parent is None else f"{parent.path}.{name}")
        # Roles grant privileges by item path; the task's own functions go by
        # the task's name.
        self.privilege_key = self.path or self.task.name
        self.fields = _check_fields(fields or {})
        self.caption = caption or name.replace("_", " ").capitalize()
        self.functions = {}
        self.reports = {}  # name -> Function (@item.report), run by the dispatcher's report()
        self.record_ops = {}  # name -> RecordOp (hpxd.core.record_ops), made on first use
        self.children = {}
        # A browser module for this item (Jam.py's js_filename): a file path
        # on the server, served under /js/ (client_module()).
        self.client_module_path = None
        # File extensions an upload to this item may have (uploads()); None: no uploads.
        self.upload_extensions = None
        self.forms = {}  # name -> Form (hpxd.core.forms), declared with form()
        self.id = self.task._register(self)

    @property
    def is_task(self):
        return self.parent is None

    @property
    def table_name(self):
        return "item_" + self.path.replace(".", "__") if self.fields else None

    def item(self, name, fields=None, caption=None):
        if name in self.children:
            raise ValueError(f"{self.path or 'task'} already has an item {name!r}")
        child = Item(self.task, self, name, fields, caption)
        self.children[name] = child
        return child

    def function(self, fn=None, *, requires="view", get=False, name=None):
        """Expose ``fn`` to every door: ``@item.function`` or ``@item.function(requires="edit")``."""
        if requires not in PRIVILEGES:
            raise ValueError(f"requires must be one of {PRIVILEGES}, not {requires!r}")

        def register(f):
            fname = name or f.__name__
            if not NAME_RE.match(fname):
                raise ValueError(f"function name {fname!r} must be a Python identifier")
            if fname in self.functions:
                raise ValueError(f"{self.path or 'task'} already has a function {fname!r}")
            function = Function(self, fname, f, requires, get)
            self.functions[fname] = function
            self.task._by_name[function.full_name] = function
            return f

        return register(fn) if fn is not None else register

    def report(self, fn=None, *, requires="view", name=None):
        """Declare a report: ``fn(item, **params)`` returns an ``hpxd.app.File``
        (name, content type, bytes). Jam.py's ``print`` runs it; the file it
        makes downloads once, by the session that asked for it."""
        if requires not in PRIVILEGES:
            raise ValueError(f"requires must be one of {PRIVILEGES}, not {requires!r}")

        def register(f):
            rname = name or f.__name__
            if not NAME_RE.match(rname):
                raise ValueError(f"report name {rname!r} must be a Python identifier")
            if rname in self.reports:
                raise ValueError(f"{self.path or 'task'} already has a report {rname!r}")
            self.reports[rname] = Function(self, rname, f, requires)
            return f

        return register(fn) if fn is not None else register

    def form(self, name, fields, *, lock="exclusive", caption=None, close_url=None):
        """Declare a form on this table-backed item (docs/forms.md):
        ``fields`` lists ``hpxd.app.FormField`` objects or field names;
        ``lock`` is "exclusive", "advisory" or "none"; ``close_url`` is
        where "save and close" and a delete lead (None: back one page).
        Form names are unique in the task. Returns the Form, for ``@form.rule``."""
        if isinstance(name, str) and (self.task.form_by_name(name) is not None
                                      or name in self.task._views):
            raise ValueError(f"the task already has a form or table view {name!r}")
        form = Form(self, name, fields, lock, caption, close_url)
        self.forms[name] = self.task._forms[name] = form
        return form

    def client_module(self, path):
        """Serve the JavaScript file at ``path`` (on the server) as this
        item's browser module: Jam.py's ``js_filename``, loaded from
        ``/js/<item id>.js`` by jam.js."""
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise ValueError(f"item {self.path or self.name!r}: no file {path}")
        self.client_module_path = path

    def uploads(self, extensions):
        """Allow file uploads to this item (edit privilege), with one of
        ``extensions`` (".jpg", "pdf", ...; compared without case)."""
        allowed = frozenset("." + e.lower().lstrip(".") for e in extensions)
        if not allowed or any(not NAME_RE.match("x" + e[1:]) for e in allowed):
            raise ValueError(f"item {self.path or self.name!r}: extensions must be plain "
                             f"names like 'pdf', not {sorted(extensions)!r}")
        self.upload_extensions = allowed

    def __repr__(self):
        return f"<Item {self.path or self.name!r} id={self.id}>"


class Task(Item):
    """The root item. An app module exposes one as its attribute ``task``."""

    def __init__(self, name, caption=None):
        self._by_id = {}
        self._by_name = {}  # "add", "catalog.test" -> Function
        self.processes = {}  # name -> Process (@task.process)
        self.ext_handler = None  # @task.on_ext_request
        self.ext_public = frozenset()  # /ext paths served without a token
        self._forms = {}  # every item's forms by name (form names are task-wide)
        self._views = {}  # every form's table views by name (hpxd.core.forms.TableView)
        # name -> absolute directory a form's download may read (download_root())
        self.download_roots = {}
        super().__init__(None, None, name, caption=caption)

    def _register(self, item):
        item_id = len(self._by_id) + 1
        self._by_id[item_id] = item
        return item_id

    def item_by_id(self, item_id):
        return self._by_id.get(item_id)

    def item_by_name(self, path):
        node = self
        for part in path.split(".") if path else []:
            node = node.children.get(part)
            if node is None:
                return None
        return node

    def items(self):
        return list(self._by_id.values())

    def form_by_name(self, name):
        return self._forms.get(name)

    def table_view_by_name(self, name):
        return self._views.get(name)

    def download_root(self, name, path):
        """Declare the directory ``path`` (it must exist) as download root
        ``name``: forms' downloads name files in it as ``"name:relative/path"``
        and read nothing outside it (hpxd.core.downloads, docs/forms.md).
        Declare roots before the forms whose downloads use them."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValueError(f"download root name {name!r} must be a Python identifier")
        if name in self.download_roots:
            raise ValueError(f"the task already has a download root {name!r}")
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"download root {name!r}: path must be a string")
        path = os.path.abspath(path)
        if not os.path.isdir(path):
            raise ValueError(f"download root {name!r}: {path} is not an existing directory")
        self.download_roots[name] = path
        return path

    def all_functions(self):
        """Every exposed function of the tree (``Function`` objects)."""
        return list(self._by_name.values())

    def resolve(self, fname):
        """"add" -> task function; "catalog.test" -> function of item catalog."""
        function = self._by_name.get(fname) if type(fname) is str else None
        if function is not None:
            return function
        if not isinstance(fname, str) or not fname:
            raise errors.InvalidMessage("fname must be a non-empty string")
        path, _, name = fname.rpartition(".")
        item = self.item_by_name(path) if "" not in fname.split(".") else None
        function = item.functions.get(name) if item is not None else None
        if function is None:
            raise errors.FunctionNotFound(f"no function named {fname!r}")
        return function

    def process(self, name, *, interval=None):
        """Declare a background process (``hpxd.core.processes``):
        ``@task.process("clock", interval=1.0)`` calls ``fn(ctx)`` every
        second; without ``interval``, ``fn(ctx)`` is an ``async def`` loop."""
        if not isinstance(name, str) or not NAME_RE.match(name) or name == "server":
            raise ValueError(f"process name {name!r} must be a Python identifier other "
                             "than 'server'")
        if interval is not None and not (isinstance(interval, (int, float)) and interval > 0):
            raise ValueError(f"process {name!r}: interval must be a number > 0")

        def register(fn):
            if name in self.processes:
                raise ValueError(f"the task already has a process {name!r}")
            self.processes[name] = Process(name, fn, interval)
            return fn

        return register

    def on_ext_request(self, fn=None, *, public=()):
        """Handle ``POST /ext/<path>`` (Jam.py's requests from other services):
        ``fn(item, path, params, environ)`` returns the JSON reply. A request
        needs a token of ``[web] ext_tokens`` unless its path is in ``public``."""
        public = frozenset(p.strip("/") for p in public)

        def register(f):
            if self.ext_handler is not None:
                raise ValueError("the task already has an on_ext_request handler")
            self.ext_handler = Function(self, "on_ext_request", f)
            self.ext_public = public
            return f

        return register(fn) if fn is not None else register


def load_task(module_name):
    """Import the app module and return its ``task``; ValueError says why
    not, in one line for the sysadmin."""
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise ValueError(f"cannot import {module_name!r} ({type(e).__name__}: {e})"
                         f"{_not_found_hint(module_name, e)}") from None
    task = getattr(module, "task", None)
    if not isinstance(task, Task):
        raise ValueError(f"module {module_name!r} has no attribute 'task' that is a hpxd.app.Task")
    return task


def _not_found_hint(module_name, error):
    """Where Python looked, when the app module itself (or its package) was
    not found; "" for any other error (a module missing inside the app
    is the app's own import, named in the error already)."""
    if not isinstance(error, ModuleNotFoundError) or error.name is None:
        return ""
    if not (module_name == error.name or module_name.startswith(error.name + ".")):
        return ""
    searched = list(dict.fromkeys(os.path.abspath(p) for p in sys.path))  # "": the cwd
    # The twistd script puts its own directory on sys.path, not the working
    # directory (python -m and python -c do): an app beside the config is
    # not found.
    top = error.name.partition(".")[0]
    cwd = os.getcwd()
    beside = [path for path in (os.path.join(cwd, top + ".py"), os.path.join(cwd, top))
              if os.path.exists(path)]
    if beside and cwd not in searched:
        return (f": {beside[0]} is in the working directory, which is not searched; "
                f"run with PYTHONPATH={cwd}")
    return (": install it, or put the directory that holds it on PYTHONPATH "
            f"(searched: {', '.join(searched)})")


def _check_fields(fields):
    for name, kind in fields.items():
        if not NAME_RE.match(name) or name == "id":
            raise ValueError(f"field name {name!r} must be an identifier other than 'id'")
        if kind not in FIELD_TYPES:
            raise ValueError(f"field {name!r}: type must be one of {list(FIELD_TYPES)}")
    return dict(fields)

"""``/api``: the HTTP door Jam.py's own browser client (``jam.js`` of
jam.py 5.4.136) drives unchanged, and ``/js/<id>.js``, the client modules
it loads (docs/http.md).

jam.js POSTs ``[request, task_id, item_id, params, modification]`` to the
relative url ``api`` and reads ``{"result": {"status", "data",
"modification"}, "error"}``. Every Jam.py request is answered HTTP 200, an
error included (jam.js writes the body of any other status over the page):
``error`` is then the message (``code`` its number in the error table) and
``result.data`` is ``[null, message]``, as Jam.py's server answers. A body
that is no Jam.py request at all (not JSON, not a 5-array with a string
first) is answered 400 with the web door's JSON error.

The requests: ``connect``, ``login``, ``logout``, ``load``, ``open``,
``apply``, ``server`` and ``print``. Each is turned into what the core
offers and nothing else: logins through ``node.login``, the tree through
``hpxd.core.tree.describe`` (rendered by jam_tree.py), records through
``dispatcher.records`` (privileges per change kind, all or nothing),
functions through ``dispatcher.call`` (only decorated ones, with their
privilege) and reports through the node's file service. jam.js's open
parameters and change logs are read in jam_records.py (Jam.py's fifteen
filter types mapped onto the records layer's operators: nothing a client
sends becomes SQL), the tree rendered in jam_tree.py.

The session is the ``hpxd_session`` cookie (hpxd/doors/web/cookies.py):
a login here sets it, and the same session then works on ``/ws``, the
TCP door and every node. A POST from an Origin not in ``[web]
allowed_origins`` is refused with 403.
"""

import json
import math
import re

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from hpxd.core import errors, tree
from hpxd.core.app import NAME_RE, arguments
from hpxd.core.doorkit import NOT_JSON, peer_text
from hpxd.core.jsonvalues import NOT_ENCODABLE, to_json
from hpxd.doors.web import JSON_TYPE, NoSuchPath, json_error, wrong_method
from hpxd.doors.web import request_environ as web_environ
from hpxd.doors.web.console import checked_file
from hpxd.doors.web.cookies import keep_session, log_out, session_now, session_of
from hpxd.doors.web.jam_records import ID_LIMIT, ChangeLog, OpenQuery, bad, short
from hpxd.doors.web.jam_tree import JamIds, render
from hpxd.doors.web.origin import OriginCheck

DOOR = "api"
# jam.js's statuses (Jam.py's PROJECT_* constants)
NOT_LOGGED, LOGGED, MODIFIED, RESPONSE = 5, 6, 8, 9
EMPTY_MODULE = b"/* hpxd: this app attaches no client module to its task */\n"
JS_NAME = re.compile(rb"([1-9][0-9]{0,8})\.js")

log = Logger("hpxd.doors.web.jam")


def parse(body):
    """``[request, task_id, item_id, params, modification]`` from a request
    body; JSONParseError or InvalidMessage (both HTTP 400) when it is none."""
    try:
        value = _decoder.decode(body.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)[:200]
        raise errors.JSONParseError(f"the body must be JSON ({why})") from None
    if type(value) is not list or len(value) != 5 or type(value[0]) is not str:
        raise errors.InvalidMessage("the body must be a Jam.py request: "
                                    "[request, task_id, item_id, params, modification]")
    return value


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _finite(text):
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"the number {text[:40]} is too large")
    return value


# No NaN, no Infinity, no number that becomes one: a reply holding one is no JSON.
_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def envelope(status, data, modification, error=None):
    """Jam.py's reply; an error adds its message and code."""
    body = {"result": {"status": status, "data": data, "modification": modification},
            "error": None}
    if error is not None:
        body["error"], body["code"] = error.msg, error.code
    return body


def request_environ(request):
    """The read-only ``environ`` of a call from ``request`` (the web door's,
    ``door`` "api")."""
    return web_environ(request, DOOR)


def _int_or_null(value, what):
    if value is not None and (type(value) is not int or not -ID_LIMIT < value < ID_LIMIT):
        raise bad(f"{what} must be an integer or null, not {short(value)}")
    return value


class Api(resource.Resource):
    """``POST /api``."""

    isLeaf = True

    def __init__(self, node, config, reactor):
        super().__init__()
        self.node = node
        self.origins = OriginCheck(config.web.allowed_origins)
        self.ids = JamIds(node.task)
        self.requests = {"connect": self.connect, "login": self.login, "logout": self.logout,
                         "load": self.load, "open": self.open, "apply": self.apply,
                         "server": self.server, "print": self.print}

    def render(self, request):
        refused = wrong_method(request, (b"POST",))
        if refused is not None:
            return refused
        if request.postpath not in ([], [b""]):
            return NoSuchPath().render(request)
        error = self.origins.refusal(request)
        if error is None:
            try:
                call = parse(request.content.read())
            except errors.HpxdError as e:
                error = e
        if error is not None:
            self._refused(request, error)
            return json_error(request, error)
        d = self.server_now(request, *call[1:]) if call[0] == "server" else None
        if isinstance(d, dict):  # answered at once: no Deferred (every server call's path)
            return self._body(d, request)
        gone = []  # the client hung up before the answer
        request.notifyFinish().addErrback(gone.append)
        if d is None:
            d = defer.ensureDeferred(self.answer(request, *call))
        d.addCallback(self._write, request, gone)
        return server.NOT_DONE_YET

    def _body(self, reply, request):
        """``reply`` as the bytes of the answer, its headers set."""
        try:
            text = to_json(reply)
        except NOT_ENCODABLE:  # a function's value that is no JSON
            log.error("an /api request's answer is not JSON: {data!r}",
                      data=reply["result"]["data"])
            text = to_json(self._failed("server", errors.UnhandledError(NOT_JSON)))
        request.setResponseCode(200)  # always, for a Jam.py request: see the module's text
        request.setHeader(b"content-type", JSON_TYPE)
        request.setHeader(b"cache-control", b"no-store")
        return text.encode("utf-8")

    def _write(self, reply, request, gone):
        body = self._body(reply, request)
        if not gone:
            request.setHeader(b"content-length", b"%d" % len(body))  # one write, not chunked
            request.write(body)
            request.finish()

    def _refused(self, request, error):
        log.info("{door} error {code} for {peer}: {msg}", door=DOOR, code=error.code,
                 msg=error.msg, peer=peer_text(request.getClientAddress()))

    def _failed(self, name, error):
        # login answers false, as Jam.py's does: jam.js takes any other
        # value (an error's [null, message] too) for a login that succeeded
        return envelope(RESPONSE, False if name == "login" else [None, error.msg],
                        self.ids.modification, error)

    async def answer(self, request, name, task_id, item_id, params, modification):
        """The reply to one Jam.py request (never raises)."""
        try:
            handler = self.requests.get(name)
            if handler is None:
                raise errors.FunctionNotFound(f"no request {name[:60]!r} (requests: "
                                              f"{', '.join(self.requests)})")
            if not self._current(task_id, item_id, modification):
                return envelope(MODIFIED, None, self.ids.modification)  # jam.js says reload
            data = await handler(request, item_id, params)
            return envelope(RESPONSE, data, self.ids.modification)
        except Exception as e:
            return self._mapped(request, name, e)

    def _current(self, task_id, item_id, modification):
        """Check the request's ids; False when the client's tree is older
        than the app's (its ``modification``)."""
        _int_or_null(task_id, "task_id")
        _int_or_null(item_id, "item_id")
        _int_or_null(modification, "modification")
        if task_id is not None and task_id != self.ids.task_id:
            raise errors.FunctionNotFound(f"no task with id {task_id}")
        return not (task_id and modification and modification != self.ids.modification)

    def _mapped(self, request, name, error):
        """The reply to a request that failed with ``error`` (call inside
        the ``except`` that caught it)."""
        if isinstance(error, errors.AuthRequired):  # no session and no guests: jam.js's login
            return envelope(NOT_LOGGED, NOT_LOGGED, self.ids.modification)
        if isinstance(error, errors.HpxdError):
            self._refused(request, error)
            return self._failed(name, error)
        log.failure("{door} request {name} failed", door=DOOR, name=name)
        return self._failed(name, errors.UnhandledError())

    def server_now(self, request, task_id, item_id, params, modification):
        """``answer`` for a ``server`` request, as the TCP, WebSocket and
        /ajax doors call: the reply itself when the store has the session at
        hand and the function answered at once; a Deferred of the reply (it
        never fails) when the call goes on; None when ``answer`` must do it
        all (the store must be asked, the client's tree is old)."""
        try:
            if not self._current(task_id, item_id, modification):
                return None
            fname, args, kwargs = self._server_call(item_id, params)
            session = session_now(request, self.node)
            if session is None:
                return None
        except Exception as e:
            return self._mapped(request, "server", e)
        try:
            result = self.node.dispatcher.call_now(session, fname, args, kwargs,
                                                   request_environ(request))
        except Exception as e:
            keep_session(request, session)
            return self._mapped(request, "server", e)
        if isinstance(result, defer.Deferred):
            return result.addBoth(self._server_ended, request, session)
        keep_session(request, session)
        return envelope(RESPONSE, [result, ""], self.ids.modification)

    def _server_ended(self, result, request, session):
        keep_session(request, session)  # once the call has stored a guest it gave data
        if isinstance(result, Failure):
            try:
                result.raiseException()
            except Exception as e:
                return self._mapped(request, "server", e)
        return envelope(RESPONSE, [result, ""], self.ids.modification)

    async def _in_session(self, request, work):
        """``work(session)`` in the request's session, its cookie kept after."""
        session = await session_of(request, self.node)
        try:
            return await work(session)
        finally:
            keep_session(request, session)

    # -- the requests ------------------------------------------------------------

    async def connect(self, request, item_id, params):
        """6 (logged in) for a user's session, else 5 (jam.js asks to log in)."""
        session = await session_of(request, self.node)
        keep_session(request, session)  # a cookie of a session that ended is cleared
        return LOGGED if session.user_name is not None and not session.transient else NOT_LOGGED

    async def login(self, request, item_id, params):
        """``[{login, password}]`` -> true, and the cookie; a refusal answers false."""
        if type(params) is not list or len(params) != 1 or type(params[0]) is not dict:
            raise errors.MissingCredentials('login takes [{"login": ..., "password": ...}]')
        form = params[0]
        peer = peer_text(request.getClientAddress())
        session = await self.node.login.login(form.get("login"), form.get("password"), peer)
        keep_session(request, session)
        return True

    async def logout(self, request, item_id, params):
        await log_out(request, self.node)
        raise errors.AuthRequired()  # Jam.py's answer: status and data "not logged"

    async def load(self, request, item_id, params):
        """``[{task, settings, locale, language, user_info, privileges}, ""]``."""
        async def work(session):
            return [render(self.ids, tree.describe(self.node, session), session), ""]
        return await self._in_session(request, work)

    async def open(self, request, item_id, params):
        """``[rows, "", null]``, each row an array in ``__fields`` order."""
        item = self._table(item_id)
        query = OpenQuery(params, item)
        environ = request_environ(request)

        async def work(session):
            rows = await query.run(self.node.dispatcher, session, item.id, environ)
            return [rows, "", None]
        return await self._in_session(request, work)

    async def apply(self, request, item_id, params):
        """jam.js's change log -> one apply; ``[{ID, changes: [{log_id,
        rec_id, details}]}, null]``, rec_id the id of each record."""
        item = self._table(item_id)
        log_changes = ChangeLog(params)
        environ = request_environ(request)

        async def work(session):
            new_ids = await self.node.dispatcher.records(session, item.id, "apply",
                                                         log_changes.kwargs(), environ)
            return [{"ID": item.id, "changes": log_changes.answer(new_ids),
                     "__edit_record_version": None}, None]
        return await self._in_session(request, work)

    async def server(self, request, item_id, params):
        """``[func_name, [args] or {kwargs}]`` -> ``[result, ""]``."""
        fname, args, kwargs = self._server_call(item_id, params)
        environ = request_environ(request)

        async def work(session):
            return [await self.node.dispatcher.call(session, fname, args, kwargs, environ), ""]
        return await self._in_session(request, work)

    async def print(self, request, item_id, params):
        """``[param_values, host, extension]`` for the report ``item_id`` ->
        ``[url, ""]``: the url downloads the report's file once, for this
        session only."""
        found = self.ids.report(item_id)
        if found is None:
            raise errors.FunctionNotFound(f"no report with id {item_id}")
        if type(params) is not list or not 1 <= len(params) <= 3 or type(params[0]) is not list:
            raise bad("print takes [parameter values, host, extension]")
        owner_id, name = found
        owner = self.node.task.item_by_id(owner_id)
        parameters = [p["name"] for p in owner.reports[name].describe()["parameters"]]
        values = params[0]
        if len(values) > len(parameters):
            raise bad(f"report {name!r} takes {len(parameters)} parameters, not {len(values)}")
        # a parameter left empty (null) takes the report function's default
        kwargs = {key: value for key, value in zip(parameters, values) if value is not None}
        files = getattr(self.node, "files", None)
        if files is None:
            raise errors.FunctionNotFound("reports need the node's file service, which this "
                                          "node does not have")
        environ = request_environ(request)

        async def work(session):
            download_id = await files.print_report(session, owner, name, kwargs, environ)
            return [f"/download/{download_id}", ""]
        return await self._in_session(request, work)

    # -- items ---------------------------------------------------------------------

    def _server_call(self, item_id, params):
        """``(fname, args, kwargs)`` of a ``server`` request's params."""
        item = self._item(item_id)
        if type(params) is not list or len(params) not in (1, 2):
            raise bad("server takes [function name, arguments]")
        name, data = params[0], params[1] if len(params) == 2 else None
        if type(name) is not str or not NAME_RE.match(name):
            raise bad(f"server: the function name must be an identifier, not {short(name)}")
        if data is not None and type(data) not in (list, dict):
            raise bad("server: the arguments must be a list (positional) or an object "
                      "(keyword arguments)")
        args, kwargs = (data, {}) if type(data) is list else arguments(data)
        return (name if item.is_task else f"{item.path}.{name}"), args, kwargs

    def _item(self, item_id):
        """The item ``item_id`` names (null: the task)."""
        if item_id is None:
            return self.node.task
        found = self.node.task.item_by_id(item_id)
        if found is None:
            raise errors.FunctionNotFound(f"no item with id {item_id}")
        return found

    def _table(self, item_id):
        if item_id is None:
            raise bad("open and apply need the id of a table-backed item")
        item = self._item(item_id)
        if not item.fields:
            raise errors.FunctionNotFound(f"item {item.path or item.name!r} has no records")
        return item


class ClientModules(resource.Resource):
    """``GET /js/<item id>.js``: the browser module an app attached to an
    item (``item.client_module(path)``), the one jam.js names by the
    item's ``js_filename``; for the task, an empty one when it has none."""

    isLeaf = True

    def __init__(self, node, config, reactor):
        super().__init__()
        self.node = node

    def render(self, request):
        refused = wrong_method(request)
        if refused is not None:
            return refused
        match = JS_NAME.fullmatch(request.postpath[0]) if len(request.postpath) == 1 else None
        item = self.node.task.item_by_id(int(match.group(1))) if match else None
        if item is None:
            return NoSuchPath().render(request)
        if item.client_module_path is not None:
            return checked_file(item.client_module_path).render(request)
        if not item.is_task:
            return NoSuchPath().render(request)
        request.setHeader(b"content-type", b"text/javascript; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        return EMPTY_MODULE

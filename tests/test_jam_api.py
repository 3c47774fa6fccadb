"""``/api`` (Jam.py's door) and ``/js/`` over raw HTTP against a real
``twistd -n hpxd`` running tests/jam_app.py (docs/http.md).

- a body that is no Jam.py request gets HTTP 400; every Jam.py request,
  however wrong, HTTP 200 with the error in Jam.py's envelope, a message
  and never a traceback, and nothing written;
- filters, orders, fields and functions of ``open``, change logs of
  ``apply``, arguments of ``server``, each wrong in every way;
- the privileges of each change kind of one apply, all or nothing;
- a foreign Origin refused; the cookie of an ``/api`` login on ``/ws`` at
  upgrade and its session id on the TCP door (on both backends).
"""

import gzip
import http.client
import json
import socket

import pytest
import websocket

from tests import jam_app
from tests.support import Daemon, RawClient, free_port

CATALOG, PARTS, NOTES = jam_app.catalog.id, jam_app.parts.id, jam_app.notes.id
FIELDS = ["id", "name", "price", "qty", "added", "in_stock"]


class Api:
    """A client of one daemon's /api with a cookie jar of its own."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.cookie = None

    @property
    def origin(self):
        return f"http://127.0.0.1:{self.daemon.web_port}"

    def raw(self, body, method="POST", path="/api", headers=None):
        """``(status, headers, body bytes)``."""
        connection = http.client.HTTPConnection("127.0.0.1", self.daemon.web_port, timeout=10)
        try:
            sent = {"content-type": "application/json", **(headers or {})}
            if self.cookie:
                sent["cookie"] = f"hpxd_session={self.cookie}"
            connection.request(method, path, body, sent)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        for header in response.headers.get_all("set-cookie") or []:
            name, _, rest = header.partition("=")
            if name == "hpxd_session":
                self.cookie = rest.split(";")[0] or None
        return response.status, response.headers, data

    def post(self, message, **kwargs):
        """``(HTTP status, JSON answer)`` of ``message`` (bytes as they are)."""
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        status, _, data = self.raw(body, **kwargs)
        return status, json.loads(data)

    def ask(self, request, item_id=None, params=None, task_id=1, modification=None):
        """The envelope of a Jam.py request answered 200."""
        status, answer = self.post([request, task_id, item_id, params, modification])
        assert status == 200, answer
        assert "Traceback" not in json.dumps(answer)
        return answer

    def data(self, request, item_id=None, params=None):
        """``result.data`` of a request that must succeed."""
        answer = self.ask(request, item_id, params)
        assert answer["error"] is None and answer["result"]["status"] == 9, answer
        return answer["result"]["data"]

    def error(self, request, item_id=None, params=None, **kwargs):
        """``(code, message)`` of a request that must fail, in Jam.py's envelope."""
        answer = self.ask(request, item_id, params, **kwargs)
        assert answer["error"], answer
        if request != "login":
            assert answer["result"]["data"] == [None, answer["error"]]
        return answer["code"], answer["error"]

    def login(self, user):
        assert self.data("login", params=[{"login": user, "password": jam_app.password(user)}])
        return self

    def rows(self, params):
        rows, error, _ = self.data("open", CATALOG, params)
        assert error == ""
        return rows

    def count(self, filters=()):
        [[count]] = self.rows({"__fields": ["id"], "__funcs": {"id": "count"},
                               "__summary": True, "__filters": list(filters)})
        return count

    def insert(self, *records):
        """Insert ``(name, price)`` records through apply; their new ids."""
        changes = log_of(*[[INSERT, None, name, price] for name, price in records])
        answer = self.data("apply", CATALOG, changes)
        return [change["rec_id"] for change in answer[0]["changes"]]


INSERT, MODIFY, DELETE = 1, 2, 3


def log_of(*changes, fields=("id", "name", "price")):
    """jam.js's change log: each change ``[status, id, value, ...]`` in ``fields`` order."""
    data = {}
    for n, (status, *values) in enumerate(changes, start=1):
        data[str(n)] = {"record": [*values, [status, {}, str(n)]], "details": {},
                        "old_record": None}
    return [{"fields": list(fields), "expanded": False, "data": data},
            {"__edit_record_version": None}]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("jamapi"), jam_app.config(free_port()), name="jamapi")
    try:
        yield d.start()
    finally:
        d.stop()


@pytest.fixture
def api(daemon):
    return Api(daemon)


@pytest.fixture
def editor(daemon):
    return Api(daemon).login("editor")


def start(daemons, backend=None, guests=True):
    return daemons(jam_app.config(free_port(), backend, guests), name="jam")


def alive(daemon):
    assert Api(daemon).data("connect") == 5


# -- not a Jam.py request: HTTP 400 ----------------------------------------------------

@pytest.mark.parametrize("body, code", [
    (b"", 900), (b"{", 900), (b"null", 403), (b"[1]", 403), (b"{}", 403), (b'"connect"', 403),
    (b'[1, 1, 2, {}, null]', 403), (b'[null, 1, 2, {}, null]', 403),
    (b'["connect", null, null, null]', 403), (b'["connect", null, null, null, null, 6]', 403),
    (b'["connect", null, null, NaN, null]', 900), (b'["open", 1, 2, {"__limit": 1e400}, 1]', 900),
    (b'["server", 1, 1, ["add", [1' + b"0" * 5000 + b', 2]], null]', 900),
    (b"[" * 100000 + b"]" * 100000, 900), (b'["connect", null, null, null, null]\xff', 900),
    (b'\xff\xfe["connect"]', 900),
])
def test_a_body_that_is_no_jam_request_gets_400(api, daemon, body, code):
    status, answer = api.post(body)
    assert status == 400 and answer["code"] == code and set(answer) == {"error", "code"}
    alive(daemon)


def test_a_body_over_max_body_bytes_is_refused(api, daemon):
    # Only the headers are sent: the node answers as soon as it reads the
    # Content-Length (sending the body too would race its closing).
    with socket.create_connection(("127.0.0.1", daemon.web_port), timeout=10) as sock:
        sock.sendall(b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (2 << 20))
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = json.loads(response.read())
    assert response.status == 400 and answer["code"] == 410
    assert "[web] max_body_bytes" in answer["error"]
    alive(daemon)


def test_api_takes_post_only_and_no_path_below_it(api):
    status, headers, data = api.raw(None, method="GET")
    assert status == 405 and json.loads(data)["code"] == 418 and headers["allow"] == "POST"
    status, answer = api.post(["connect", None, None, None, None], path="/api/more")
    assert status == 404 and answer["code"] == 404


def test_a_reply_is_json_with_its_charset_and_gzip_when_accepted(api):
    body = json.dumps(["connect", None, None, None, None]).encode()
    status, headers, data = api.raw(body, headers={"accept-encoding": "gzip"})
    assert status == 200 and headers["content-type"] == "application/json; charset=utf-8"
    assert headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(data))["result"]["data"] == 5


# -- a Jam.py request, however wrong: HTTP 200 and Jam.py's envelope --------------------

def test_an_unknown_request_is_an_error_in_the_envelope(api):
    code, message = api.error("drop_tables", CATALOG, {})
    assert code == 404 and "no request 'drop_tables'" in message


@pytest.mark.parametrize("position, value", [
    (1, "1"), (1, True), (1, 1.0), (1, {}), (1, 99), (1, 2 ** 64),
    (2, "2"), (2, False), (2, [2]), (2, 2.5), (2, -(2 ** 70)),
    (4, "12"), (4, 1.5), (4, [1]),
])
def test_wrong_types_at_the_ids_and_modification_are_errors(editor, position, value):
    message = ["server", 1, CATALOG, ["test", [1, 2]], None]
    message[position] = value
    status, answer = editor.post(message)
    assert status == 200 and answer["error"] and answer["result"]["data"] == [None,
                                                                              answer["error"]]
    assert answer["code"] in (404, 413)


@pytest.mark.parametrize("request_name, item_id, params", [
    ("login", None, "editor"), ("login", None, []), ("login", None, [1]),
    ("login", None, [{"login": 1, "password": 2}]), ("login", None, [{"login": "editor"}]),
    ("open", CATALOG, []), ("open", CATALOG, "x"), ("open", CATALOG, None),
    ("open", None, {}), ("open", NOTES, {}), ("open", 999, {}), ("open", CATALOG + 1000, {}),
    ("apply", CATALOG, None), ("apply", CATALOG, {}), ("apply", CATALOG, [1, 2, 3]),
    ("apply", CATALOG, [{"fields": "id", "data": {}}]), ("apply", CATALOG, [[], None]),
    ("server", CATALOG, None), ("server", CATALOG, "test"), ("server", CATALOG, [1, [1, 2]]),
    ("server", CATALOG, ["test", 5]), ("server", CATALOG, ["test", "1, 2"]),
    ("server", CATALOG, ["test", [1, 2], 3]), ("server", CATALOG, ["__init__", []]),
    ("server", CATALOG, ["catalog.test", [1, 2]]), ("server", CATALOG, ["records", []]),
    ("server", CATALOG, ["test", [1]]), ("server", CATALOG, ["test", {"a": 1, "c": 2}]),
    ("server", 999, ["test", [1, 2]]),
    ("print", CATALOG, [[], "", "pdf"]), ("print", 999, [[]]), ("print", None, [[]]),
])
def test_wrong_parameters_of_each_request_are_errors(editor, request_name, item_id, params):
    code, message = editor.error(request_name, item_id, params)
    assert code in (404, 411, 412, 413) and "Traceback" not in message


def test_server_takes_a_list_or_an_object_of_arguments(editor):
    assert editor.data("server", CATALOG, ["test", [1, 2]]) == [3, ""]
    assert editor.data("server", CATALOG, ["greet", {"name": "jam"}]) == ["hello jam", ""]
    assert editor.data("server", CATALOG, ["greet", ["jam", "hi"]]) == ["hi jam", ""]
    assert editor.data("server", None, ["add", [2, 3]]) == [5, ""]
    assert editor.data("server", 1, ["whoami"]) == [{"user_name": "editor", "role": "editor"}, ""]


def test_huge_numbers_and_deep_nesting_are_errors_or_values_never_crashes(editor, daemon):
    big = 10 ** 300
    assert editor.data("server", None, ["add", [big, 1]]) == [big + 1, ""]
    nested = [[]]
    for _ in range(200):
        nested = [nested]
    assert editor.data("server", None, ["add", [nested, [1]]]) == [[nested[0], 1], ""]
    code, message = editor.error("server", None, ["add", [nested, 1]])
    assert (code, message) == (100, "internal server error")
    code, _ = editor.error("open", CATALOG, {"__limit": 2 ** 63})
    assert code == 413
    code, _ = editor.error("open", CATALOG, {"__offset": 10 ** 30})
    assert code == 413
    code, _ = editor.error("open", CATALOG, {"__filters": [["qty", 1, 10 ** 30]]})
    assert code == 413
    alive(daemon)


def test_an_unexpected_error_or_a_value_that_is_no_json_says_no_more(editor, daemon):
    assert editor.error("server", CATALOG, ["crash", []]) == (100, "internal server error")
    code, message = editor.error("server", CATALOG, ["not_json", []])
    assert code == 100 and "secret" not in message
    assert "secret database text" in daemon.log()  # the traceback is in the log only


# -- connect, login, logout, load --------------------------------------------------------

def test_login_sets_the_cookie_and_connect_says_logged_in(api):
    assert api.data("connect") == 5
    answer = api.ask("login", params=[{"login": "editor", "password": "wrong"}])
    assert answer["result"]["data"] is False and answer["code"] == 411 and api.cookie is None
    assert api.data("login", params=[{"login": "editor",
                                      "password": jam_app.password("editor")}]) is True
    assert api.cookie and api.data("connect") == 6


def test_logout_ends_the_session(daemon):
    api = Api(daemon).login("viewer")
    cookie = api.cookie
    answer = api.ask("logout")
    assert answer["result"] == {"status": 5, "data": 5, "modification": answer["result"][
        "modification"]} and answer["error"] is None
    assert api.cookie is None
    api.cookie = cookie  # the old cookie names a session that has ended
    assert api.data("connect") == 5 and api.cookie is None


def test_a_guest_without_a_cookie_stores_nothing(api):
    assert api.data("server", CATALOG, ["test", [1, 2]]) == [3, ""]
    assert api.cookie is None


def test_load_renders_the_tree(editor):
    info, error = editor.data("load")
    assert error == ""
    [items] = [group for kind, group in info["task"]["items"] if kind == 6]
    catalog = next(i for kind, i in items["items"] if i["id"] == CATALOG)
    assert [f[1] for f in catalog["fields"]] == FIELDS
    assert catalog["js_filename"] == f"{CATALOG}.js" and info["task"]["js_filename"] == "1.js"
    assert info["privileges"][str(CATALOG)] == {"can_view": True, "can_create": True,
                                                "can_edit": True, "can_delete": True}
    assert info["user_info"] == {"user_name": "editor", "role_name": "editor"}


def test_a_client_with_another_modification_is_told_to_reload(editor):
    answer = editor.ask("server", CATALOG, ["test", [1, 2]], modification=12)
    assert answer["result"]["status"] == 8 and answer["result"]["data"] is None
    right = answer["result"]["modification"]
    assert editor.ask("server", CATALOG, ["test", [1, 2]],
                      modification=right)["result"]["data"] == [3, ""]


def test_without_guests_a_request_without_a_session_is_not_logged_in(daemons):
    daemon = start(daemons, guests=False)
    api = Api(daemon)
    for request, item_id, params in [("connect", None, None), ("load", None, None),
                                     ("open", CATALOG, {}), ("server", None, ["add", [1, 2]])]:
        answer = api.ask(request, item_id, params)
        assert answer["result"]["status"] == 5 and answer["result"]["data"] == 5, answer
    api.login("viewer")
    assert api.data("server", None, ["add", [1, 2]]) == [3, ""]


# -- open: fields, filters, order, limits, functions ---------------------------------------

@pytest.fixture(scope="module")
def open_rows(daemon):
    """Records only this test module's open tests read (names "open-...")."""
    api = Api(daemon).login("editor")
    changes = log_of(*[[INSERT, None, name, price, qty, added, stock]
                       for name, price, qty, added, stock in [
                           ("open-a", 1.0, 1, "2024-01-01", True),
                           ("open-b", 2.0, None, "2024-02-01", False),
                           ("open-c", 3.0, 3, None, True),
                           ("open-d 50%", 4.0, 4, "2024-04-01", None)]],
                     fields=FIELDS)
    api.data("apply", CATALOG, changes)
    return api


@pytest.mark.parametrize("filters, expected", [
    ([["name", 1, "open-a"]], ["open-a"]), ([["name", 11, "open-a"]], ["open-a"]),
    ([["price", 2, 1.0]], ["open-b", "open-c", "open-d 50%"]),
    ([["price", 3, 2]], ["open-a"]), ([["price", 4, 2]], ["open-a", "open-b"]),
    ([["price", 5, 3]], ["open-d 50%"]), ([["price", 6, 3]], ["open-c", "open-d 50%"]),
    ([["qty", 7, [1, 3, None]]], ["open-a", "open-c"]), ([["qty", 8, [1, 3]]], ["open-d 50%"]),
    ([["price", 9, [2, 3]]], ["open-b", "open-c"]),
    ([["qty", 10, True]], ["open-b"]), ([["added", 10, False]], ["open-a", "open-b",
                                                                 "open-d 50%"]),
    ([["name", 12, "50%"]], ["open-d 50%"]), ([["name", 13, "open-"], ["name", 14, "c"]],
                                               ["open-c"]),
    ([["name", 15, "d open"]], ["open-d 50%"]), ([["in_stock", 1, True]], ["open-a", "open-c"]),
    ([["added", 6, "2024-02-01"]], ["open-b", "open-d 50%"]),
    ([["name", 1, None]], ["open-a", "open-b", "open-c", "open-d 50%"]),  # Jam.py: no value, no filter
])
def test_each_filter_type(open_rows, filters, expected):
    rows = open_rows.rows({"__fields": ["name"], "__order": [["name", False]],
                           "__filters": [["name", 13, "open-"], *filters]})
    assert [row[0] for row in rows] == expected


def test_rows_come_in_fields_order_ordered_limited_and_offset(open_rows):
    params = {"__fields": ["price", "name", "id"], "__order": [["price", True]],
              "__filters": [["name", 13, "open-"]], "__limit": 2, "__offset": 1}
    rows = open_rows.rows(params)
    assert [row[:2] for row in rows] == [[3.0, "open-c"], [2.0, "open-b"]]
    assert all(isinstance(row[2], int) for row in rows)
    every = open_rows.rows({"__filters": [["name", 1, "open-a"]]})  # no __fields: all of them
    assert len(every[0]) == len(FIELDS) and every[0][1:] == ["open-a", 1.0, 1, "2024-01-01", True]
    assert open_rows.rows({"__open_empty": True}) == []


def test_functions_and_the_paginator_s_count(open_rows):
    assert open_rows.count([["name", 13, "open-"]]) == 4
    [row] = open_rows.rows({"__fields": ["price", "qty"], "__funcs": {"price": "sum",
                                                                      "qty": "max"},
                            "__filters": [["name", 13, "open-"]]})
    assert row == [10.0, 4]


@pytest.mark.parametrize("params", [
    {"__filters": [["nope", 1, "x"]]}, {"__filters": [["nope", 1, None]]},
    {"__filters": [["name", 0, "x"]]}, {"__filters": [["name", 16, "x"]]},
    {"__filters": [["name", "1", "x"]]}, {"__filters": [["name", True, "x"]]},
    {"__filters": [["name", 1.0, "x"]]}, {"__filters": [["name", 1]]},
    {"__filters": [["name; drop table item_catalog", 1, "x"]]},
    {"__filters": [["price", 12, "1"]]}, {"__filters": [["qty", 1, "1"]]},
    {"__filters": [["qty", 9, [1]]]}, {"__filters": [["qty", 10, "yes"]]},
    {"__filters": "name = 1"}, {"__filters": [["name", 1, "x"]] * 51},
    {"__fields": ["nope"]}, {"__fields": "name"}, {"__fields": [1]},
    {"__order": [["nope", False]]}, {"__order": [["name", "desc"]]}, {"__order": ["name"]},
    {"__limit": -1}, {"__limit": "10"}, {"__offset": True},
    {"__fields": ["id"], "__funcs": {"id": "drop"}},
    {"__fields": ["id"], "__funcs": {"nope": "count"}},
    {"__fields": ["name"], "__funcs": {"name": "sum"}},
    {"__fields": ["id", "name"], "__funcs": {"id": "count"}}, {"__funcs": {"id": "count"}},
    {"__funcs": "count"}, {"__group_by": ["name"]}, {"__master_id": 2, "__master_rec_id": 1},
    {"__where": "1=1"},
])
def test_a_bad_open_is_an_error_never_sql(editor, params):
    code, message = editor.error("open", CATALOG, params)
    assert code == 413 and "SELECT" not in message.upper() and "sql" not in message.lower()


# -- apply: the change log ---------------------------------------------------------------

def test_apply_inserts_modifies_and_deletes_and_answers_the_ids(editor):
    [a, b] = editor.insert(("apply-a", 1.0), ("apply-b", 2.0))
    answer = editor.data("apply", CATALOG, log_of([MODIFY, a, "apply-a2", 1.5],
                                                  [DELETE, b, "apply-b", 2.0],
                                                  [INSERT, None, "apply-c", 3.0]))
    changes = answer[0]["changes"]
    assert answer[1] is None and answer[0]["ID"] == CATALOG
    assert [c["log_id"] for c in changes] == ["1", "2", "3"]
    assert changes[0]["rec_id"] == a and changes[1]["rec_id"] == b
    assert editor.rows({"__fields": ["name", "price"], "__filters": [["name", 13, "apply-"]],
                        "__order": [["name", False]]}) == [["apply-a2", 1.5], ["apply-c", 3.0]]


@pytest.mark.parametrize("changes", [
    log_of([INSERT, None, "bad-1", 1.0], [MODIFY, 10 ** 9, "x", 1.0]),   # no such record
    log_of([INSERT, None, "bad-2", 1.0], [DELETE, 10 ** 9, "x", 1.0]),   # no such record
    log_of([INSERT, None, "bad-3", 1.0], [MODIFY, "1", "x", 1.0]),       # a string id
    log_of([INSERT, None, "bad-4", 1.0], [DELETE, None, "x", 1.0]),
    log_of([INSERT, None, "bad-5", 1.0], [INSERT, None, "bad-5b", "cheap"]),  # wrong type
    log_of([INSERT, None, "bad-6", 1.0], [INSERT, 7, "bad-6b", 1.0]),    # an id on an insert
    log_of([INSERT, None, "bad-7", 1.0], [9, 1, "x", 1.0]),             # no such status
    log_of([INSERT, None, "bad-8", 1.0], [True, None, "x", 1.0]),
    log_of([INSERT, "bad-9", 1.0], fields=("name", "price")),          # no id field
    log_of([INSERT, None, "bad-10", 1.0], fields=("id", "nope", "price")),  # an unknown field
    log_of([INSERT, None, "bad-11", 1.0], fields=("id", "name", "name")),
    [{"fields": ["id", "name", "price"], "data": {"1": {"record": [None, "bad-12", 1.0]}}}, None],
    [{"fields": ["id", "name", "price"], "data": {"1": {"record": [None, "bad-13", 1.0,
                                                                   [1, {}, "1"]],
                                                        "details": {"5": {}}}}}, None],
    [{"fields": ["id", "name", "price"], "data": {"1": "bad-14"}}, None],
])
def test_a_bad_change_log_writes_nothing(editor, changes):
    before = editor.count()
    code, message = editor.error("apply", CATALOG, changes)
    assert code in (413, 416)
    assert editor.count() == before
    assert editor.rows({"__fields": ["name"], "__filters": [["name", 13, "bad-"]]}) == []


@pytest.mark.parametrize("user, allowed", [
    ("creator", {INSERT}), ("changer", {MODIFY}), ("remover", {DELETE}),
    ("viewer", set()), ("editor", {INSERT, MODIFY, DELETE}),
])
def test_each_change_kind_needs_its_privilege_and_one_refusal_refuses_all(daemon, user,
                                                                         allowed):
    setup = Api(daemon).login("editor")
    api = Api(daemon).login(user)
    for kind in (INSERT, MODIFY, DELETE):
        [record] = setup.insert((f"priv-{user}-{kind}", 1.0))
        change = [kind, None if kind == INSERT else record, f"priv-{user}-{kind}-new", 2.0]
        answer = api.ask("apply", CATALOG, log_of(change))
        assert (answer["error"] is None) == (kind in allowed), (kind, answer)
        if kind not in allowed:
            assert answer["code"] == 406
    # every kind in one apply: refused whole unless all three are allowed
    [m, d] = setup.insert((f"priv-{user}-m", 1.0), (f"priv-{user}-d", 1.0))
    before = setup.count()
    answer = api.ask("apply", CATALOG, log_of([INSERT, None, f"priv-{user}-all", 1.0],
                                              [MODIFY, m, f"priv-{user}-m2", 1.0],
                                              [DELETE, d, "", 1.0]))
    names = [r[0] for r in setup.rows({"__fields": ["name"],
                                       "__filters": [["name", 13, f"priv-{user}-"]]})]
    if allowed == {INSERT, MODIFY, DELETE}:
        assert answer["error"] is None
        assert f"priv-{user}-all" in names and f"priv-{user}-m2" in names
        assert f"priv-{user}-d" not in names
    else:
        assert answer["code"] == 406 and setup.count() == before
        assert f"priv-{user}-all" not in names and f"priv-{user}-m" in names
        assert f"priv-{user}-d" in names


def test_a_viewer_may_open_but_not_call_an_edit_function(daemon):
    viewer = Api(daemon).login("viewer")
    assert isinstance(viewer.rows({"__fields": ["id"], "__limit": 1}), list)
    code, message = viewer.error("server", CATALOG, ["restock", [1]])
    assert code == 406 and "lacks 'edit'" in message


# -- Origin; the session on the other doors ----------------------------------------------

def test_a_foreign_origin_is_refused(api):
    status, answer = api.post(["login", None, None, [{"login": "editor",
                                                      "password": jam_app.password("editor")}],
                               None], headers={"origin": "http://evil.example"})
    assert status == 403 and answer["code"] == 406 and api.cookie is None
    status, answer = api.post(["connect", None, None, None, None],
                              headers={"origin": api.origin})
    assert status == 200 and answer["result"]["data"] == 5


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_the_cookie_of_an_api_login_works_on_ws_at_upgrade_and_on_tcp(daemons, request, kind):
    backend = None
    if kind == "redis":
        backend = {"kind": "redis", "redis_url": request.getfixturevalue("redis_server").url}
    daemon = start(daemons, backend)
    api = Api(daemon).login("changer")
    # /ws: the upgrade carries the cookie; the socket is changer's from the start
    ws = websocket.create_connection(f"ws://127.0.0.1:{daemon.web_port}/ws",
                                     cookie=f"hpxd_session={api.cookie}",
                                     origin=api.origin, timeout=10)
    try:
        ws.send(json.dumps({"streamId": 1, "action": "catalog.restock", "data": [4]}))
        assert json.loads(ws.recv()) == {"streamId": 1, "data": 4}
        ws.send(json.dumps({"streamId": 2, "action": "whoami", "data": None}))
        messages = [json.loads(ws.recv()) for _ in range(3)]
        assert {"streamId": 2, "data": {"user_name": "changer", "role": "changer"}} in messages
    finally:
        ws.close()
    # TCP: the session id in the envelope
    tcp = RawClient(daemon.tcp_port)
    try:
        tcp.recv()  # the greeting
        reply = tcp.call([{"fname": "whoami"}], session=api.cookie)
        assert reply["data"] == [{"fname": "whoami",
                                  "data": {"user_name": "changer", "role": "changer"}}]
    finally:
        tcp.close()
    # and the other way round: a logout on /api ends it for every door
    session_id = api.cookie
    api.ask("logout")
    tcp = RawClient(daemon.tcp_port)
    try:
        tcp.recv()
        assert tcp.call([{"fname": "whoami"}], session=session_id)["error"]["code"] == 408
    finally:
        tcp.close()


# -- /js/: client modules -----------------------------------------------------------------

def test_js_serves_the_client_modules_jam_js_asks_for(api):
    status, headers, data = api.raw(None, method="GET", path=f"/js/{CATALOG}.js")
    assert status == 200 and b"catalog_module_loaded" in data
    assert headers["content-type"].startswith("text/javascript")
    status, headers, data = api.raw(None, method="GET", path="/js/1.js")  # the task: none attached
    assert status == 200 and data.startswith(b"/*")
    for path in [f"/js/{PARTS}.js", "/js/999.js", "/js/0.js", "/js/1", "/js/../jam_app.py",
                 "/js/", "/js/1.js/x", "/js/%2e%2e/1.js"]:
        status, _, data = api.raw(None, method="GET", path=path)
        assert status == 404 and json.loads(data)["code"] == 404, path
    status, _, _ = api.raw(b"", method="POST", path="/js/1.js")
    assert status == 405


# -- print: reports --------------------------------------------------------------------------

def report_id(api):
    """The id jam.js knows the catalog's price_list report by, from ``load``."""
    info, _ = api.data("load")
    [reports] = [group for kind, group in info["task"]["items"] if kind == 9]
    [report] = [r for kind, r in reports["items"] if r["name"] == "price_list"]
    return report["id"]


def test_print_answers_a_url_that_downloads_once_for_this_session_only(editor, daemon):
    editor.insert(("print-a", 1.0))
    url, error = editor.data("print", report_id(editor), [["Cheap things"], "", "txt"])
    assert error == "" and url.startswith("/download/")
    stranger = Api(daemon).login("editor")  # the same user, another session
    status, _, _ = stranger.raw(None, method="GET", path=url)
    assert status in (403, 404)
    status, headers, data = editor.raw(None, method="GET", path=url)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert data.decode().startswith("Cheap things\n") and "print-a: 1.0" in data.decode()
    status, _, _ = editor.raw(None, method="GET", path=url)
    assert status == 404  # once


def test_print_with_a_parameter_left_empty_takes_the_default(editor):
    url, _ = editor.data("print", report_id(editor), [[None], "", "txt"])
    _, _, data = editor.raw(None, method="GET", path=url)
    assert data.decode().startswith("Prices\n")


@pytest.mark.parametrize("params", [[["a", "b"]], ["title"], [], [[{"x": 1}]]])
def test_a_bad_print_is_an_error(editor, params):
    code, _ = editor.error("print", report_id(editor), params)
    assert code in (100, 413)


# -- two nodes, one Redis, one PostgreSQL -----------------------------------------------

def test_a_login_and_records_made_through_node_a_hold_on_node_b(
        postgres_url, redis_server, daemons):
    backend = {"kind": "redis", "redis_url": redis_server.url}
    shared_db = f'[database]\nurl = "{postgres_url}"\n'
    a = daemons(jam_app.config(free_port(), backend) + shared_db, name="a")
    b = daemons(jam_app.config(free_port(), backend) + shared_db, name="b")
    on_a = Api(a).login("editor")
    on_b = Api(b)
    on_b.cookie = on_a.cookie  # the browser's cookie, sent to the other node
    assert on_b.data("connect") == 6  # logged in there too
    [new_id] = on_a.insert(("made-on-a", 2.5))
    rows = on_b.rows({"__fields": ["id", "name", "price"],
                      "__filters": [["name", 1, "made-on-a", None]]})
    assert rows == [[new_id, "made-on-a", 2.5]]
    assert on_b.ask("logout")["result"]["status"] == 5  # Jam.py answers a logout so
    assert on_a.ask("connect")["result"]["data"] == 5  # logged out everywhere

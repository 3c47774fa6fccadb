"""Jam.py's own browser client, ``jam/js/jam.js`` of the PyPI package
jam.py 5.4.136, unchanged, in headless chromium (Debian's, driven by
playwright) against a real ``twistd -n hpxd`` running tests/jam_app.py.

The test page is served by playwright itself at the daemon's origin
(``page.route``), with jquery.js and jam.js from the jam package, so that
jam.js's relative url ``api`` is the daemon's ``/api`` and its client
modules ``js/<id>.js`` the daemon's ``/js/``.

Skipped when chromium, playwright or jam.py is missing, failed instead
when HPXD_REQUIRE_SERVICES=1 (CI).
"""

import json
import urllib.request
from pathlib import Path

import pytest

from tests import jam_app
from tests.support import REPO, Daemon, chromium, free_port, jam_js_file

PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>hpxd jam.js test</title>
<script src="jquery.js"></script><script src="jam.js"></script>
</head><body></body></html>"""
TIMEOUT_MS = 10000


@pytest.fixture(scope="module")
def jam_js():
    """jam.js and jquery.js of the installed jam.py package."""
    what = "Jam.py's own client"
    return {f"/{name}": Path(jam_js_file(name, what)).read_bytes()
            for name in ("jam.js", "jquery.js")}


@pytest.fixture(scope="module")
def browser():
    with chromium("jam.js's browser test") as launched:
        yield launched


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, jam_js):
    # [web] static_dir holds docs/jam-example.html with the jam package's scripts
    static = tmp_path_factory.mktemp("static")
    (static / "jam-example.html").write_bytes((REPO / "docs" / "jam-example.html").read_bytes())
    for name, script in jam_js.items():
        (static / name[1:]).write_bytes(script)
    port = free_port()
    d = Daemon(tmp_path_factory.mktemp("jam"), jam_app.config(port, static_dir=static),
               name="jam")
    try:
        yield d.start()
    finally:
        d.stop()


def origin(daemon):
    return f"http://127.0.0.1:{daemon.web_port}"


@pytest.fixture
def open_page(browser, daemon, jam_js):
    """``open_page()``: a fresh browser context (no cookie) on the test page."""
    contexts = []

    def open_page():
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))

        def serve(route):
            path = route.request.url[len(origin(daemon)):]
            if path == "/jam-test.html":
                route.fulfill(status=200, body=PAGE, content_type="text/html; charset=utf-8")
            elif path in jam_js:
                route.fulfill(status=200, body=jam_js[path],
                              content_type="text/javascript; charset=utf-8")
            else:
                route.continue_()  # /api, /js/, /download/: the daemon's
        page.route(origin(daemon) + "/**", serve)
        page.goto(origin(daemon) + "/jam-test.html")
        return page

    yield open_page
    for context in contexts:
        context.close()


def run(page, script, arg=None):
    """Run ``script``, the body of ``async (arg) => {...}``, in the page."""
    return page.evaluate(f"async (arg) => {{ {script} }}", arg)


def log_in(page, user):
    return run(page, """return await new Promise(done =>
        task.send_request('login', [{login: arg[0], password: arg[1]}], done));""",
               [user, jam_app.password(user)])


def load_task(page):
    run(page, "await new Promise(done => task.load_task(done));")


def logged_in_page(open_page, user="editor"):
    page = open_page()
    assert log_in(page, user) is True
    load_task(page)
    return page


def raw_open(daemon, user, params):
    """Rows of the catalog as ``user`` sees them, through /api without a browser."""
    jar = urllib.request.HTTPCookieProcessor()
    opener = urllib.request.build_opener(jar)

    def post(body):
        request = urllib.request.Request(origin(daemon) + "/api", json.dumps(body).encode(),
                                         {"content-type": "application/json"})
        with opener.open(request, timeout=10) as answer:
            return json.loads(answer.read())
    assert post(["login", None, None, [{"login": user, "password": jam_app.password(user)}],
                 None])["result"]["data"] is True
    reply = post(["open", 1, catalog_id(), params, None])
    assert reply["error"] is None, reply
    return reply["result"]["data"][0]


def catalog_id():
    return jam_app.catalog.id


def names(daemon, **where):
    filters = [[field, 1, value] for field, value in where.items()]
    rows = raw_open(daemon, "editor", {"__fields": ["name"], "__filters": filters,
                                       "__order": [["name", False]]})
    return [row[0] for row in rows]


# -- logging in and loading the task --------------------------------------------------

def test_log_in_with_send_request_and_a_wrong_password_is_refused(open_page):
    page = open_page()
    wrong = run(page, """return await new Promise(done =>
        task.send_request('login', [{login: 'editor', password: 'not it'}], done));""")
    assert wrong is False
    assert run(page, "return await new Promise(done => task.send_request('connect', null, done));") == 5
    assert log_in(page, "editor") is True
    assert run(page, "return await new Promise(done => task.send_request('connect', null, done));") == 6


def test_load_task_builds_the_tree_and_loads_the_client_module(open_page):
    page = logged_in_page(open_page)
    tree = run(page, """
        const c = task.catalog;
        return {task: [task.ID, task.item_name, task.item_caption],
                catalog: [c.ID, c.item_name, c.item_caption, c.item_type],
                fields: c.fields.map(f => [f.field_name, f.field_type]),
                parts: task.catalog__parts.fields.map(f => f.field_name),
                notes: [task.notes.item_type, task.notes.virtual_table],
                reports: c.reports.map(r => r.item_name),
                module: window.catalog_module_loaded,
                user: task.user_info.user_name,
                can: [c.can_view(), c.can_create(), c.can_edit(), c.can_delete()]};""")
    assert tree == {
        "task": [1, "jamtest", "Jam test"],
        "catalog": [catalog_id(), "catalog", "Catalog", "item"],
        "fields": [["id", "integer"], ["name", "text"], ["price", "float"], ["qty", "integer"],
                   ["added", "date"], ["in_stock", "boolean"]],
        "parts": ["id", "label"],
        "notes": ["item", True],
        "reports": ["price_list"],
        "module": catalog_id(),
        "user": "editor",
        "can": [True, True, True, True],
    }
    assert page.errors == []


def test_a_viewer_s_tree_says_what_it_may_do(open_page):
    page = logged_in_page(open_page, "viewer")
    can = run(page, """const c = task.catalog;
        return [c.can_view(), c.can_create(), c.can_edit(), c.can_delete()];""")
    assert can == [True, False, False, False]


# -- server functions ------------------------------------------------------------------

SERVER = """return await new Promise(done => {
    try { task.catalog.server(arg[0], arg[1], (result, error) => done([result, error])); }
    catch (e) { done(['thrown', String(e)]); }
});"""


def test_the_seed_s_server_example_gives_its_result(open_page):
    page = logged_in_page(open_page)
    assert run(page, SERVER, ["test", [1, 2]]) == [3, ""]
    assert run(page, "return await new Promise(done => task.server('add', [2, 5], "
                     "(r, e) => done([r, e])));") == [7, ""]


def test_a_function_s_error_reaches_the_callback(open_page):
    page = logged_in_page(open_page)
    assert run(page, SERVER, ["refuse", ["not today"]]) == [None, "not today"]
    result, error = run(page, SERVER, ["crash", []])
    assert result is None and error == "internal server error"
    result, error = run(page, SERVER, ["nope", []])
    assert result is None and "no function named 'catalog.nope'" in error


def test_an_edit_only_function_is_refused_for_a_viewer(open_page):
    viewer = logged_in_page(open_page, "viewer")
    result, error = run(viewer, SERVER, ["restock", [5]])
    assert result is None and "lacks 'edit'" in error
    editor = logged_in_page(open_page, "editor")
    assert run(editor, SERVER, ["restock", [5]]) == [5, ""]


# -- records ---------------------------------------------------------------------------

APPEND = """const c = task.catalog;
    return await new Promise((done, fail) => c.open({open_empty: true}, () => {
        for (const [name, price, qty] of arg) {
            c.append();
            c.field_by_name('name').value = name;
            c.field_by_name('price').value = price;
            c.field_by_name('qty').value = qty;
            c.post();
        }
        try {
            c.apply(error => done(error ? ['error', error] :
                                  ['ok', c.rec_count, c.field_by_name('id').value]));
        } catch (e) { /* jam.js throws the error after the callback */ }
    }));"""

OPEN = """const c = task.catalog;
    return await new Promise(done => c.open(arg, () => {
        const rows = [];
        c.each(r => { rows.push([r.field_by_name('name').value, r.field_by_name('price').value]); });
        done(rows);
    }));"""


def test_open_with_where_order_by_limit_and_offset_reads_the_right_rows(open_page, daemon):
    page = logged_in_page(open_page)
    added = [["jam-open-a", 1.0, 1], ["jam-open-b", 2.5, 2], ["jam-open-c", 3.0, 3],
             ["jam-open-d", 4.0, 4], ["other-open", 9.0, 9]]
    status, count, last_id = run(page, APPEND, added)
    assert (status, count) == ("ok", 5) and isinstance(last_id, int)
    rows = run(page, OPEN, {"where": {"name__startwith": "jam-open-"},
                            "order_by": ["-price"], "limit": 2, "offset": 1})
    assert rows == [["jam-open-c", 3.0], ["jam-open-b", 2.5]]
    rows = run(page, OPEN, {"where": {"name__contains": "open", "price__ge": 3},
                            "order_by": ["name"]})
    assert rows == [["jam-open-c", 3.0], ["jam-open-d", 4.0], ["other-open", 9.0]]
    rows = run(page, OPEN, {"where": {"name__in": ["jam-open-a", "other-open"]},
                            "order_by": ["name"], "fields": ["name", "price"]})
    assert rows == [["jam-open-a", 1.0], ["other-open", 9.0]]


def test_append_edit_delete_then_apply_change_what_a_later_open_sees(open_page, daemon):
    page = logged_in_page(open_page)
    status, _, new_id = run(page, APPEND, [["jam-edit-a", 1.0, 1], ["jam-edit-b", 2.0, 2]])
    assert status == "ok"
    assert names(daemon, id=new_id) == ["jam-edit-b"]
    changed = run(page, """const c = task.catalog;
        return await new Promise(done => c.open({where: {name__startwith: 'jam-edit-'},
                                                 order_by: ['name']}, () => {
            c.edit(); c.field_by_name('price').value = 7.5; c.post();   // jam-edit-a
            c.next(); c.delete();                                        // jam-edit-b
            try { c.apply(error => done(error || 'ok')); } catch (e) {}
        }));""")
    assert changed == "ok"
    assert raw_open(daemon, "viewer", {"__fields": ["name", "price"], "__filters": [
        ["name", 13, "jam-edit-"]]}) == [["jam-edit-a", 7.5]]


def test_a_viewer_s_insert_never_lands(open_page, daemon):
    page = logged_in_page(open_page, "viewer")
    status, error = run(page, APPEND, [["jam-viewer-insert", 1.0, 1]])
    assert status == "error" and "lacks 'create'" in error
    assert names(daemon, name="jam-viewer-insert") == []


def test_the_paginator_s_count(open_page):
    page = logged_in_page(open_page)
    assert run(page, APPEND, [[f"jam-count-{i}", float(i), i] for i in range(7)])[0] == "ok"
    # what jam.js's paginator does (DBTable.calc_summary): a copy opened with
    # the count of its first field as the only value, and __summary
    count = run(page, """const copy = task.catalog.copy({handlers: false, details: false});
        copy.set_where({name__startwith: 'jam-count-'});
        return await new Promise(done => copy.open(
            {fields: ['id'], funcs: {id: 'count'}, params: {__summary: true}},
            () => done(copy.field_by_name('id').value)));""")
    assert count == 7


# -- the example page of docs/http.md ----------------------------------------------------

def test_the_docs_example_page_is_a_jam_front_end_on_hpxd(browser, daemon):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(origin(daemon) + "/static/jam-example.html")
        page.get_by_label("User").fill("editor")
        page.get_by_label("Password").fill(jam_app.password("editor"))
        page.get_by_role("button", name="Log in").click()
        page.wait_for_selector("text=Logged in as editor")
        page.get_by_label("Name").fill("example-page-record")
        page.get_by_label("Price").fill("12.5")
        page.get_by_role("button", name="Add").click()
        page.wait_for_selector("text=Added record")
        page.wait_for_selector("#rows td:text-is('example-page-record')")
        page.get_by_role("button", name="catalog.test(1, 2)").click()
        page.wait_for_selector("text=1 + 2 = 3")
        row = page.locator("#rows tr", has_text="example-page-record")
        row.get_by_role("button", name="Delete").click()
        page.wait_for_selector("text=Deleted")
        page.wait_for_selector("#rows td:text-is('example-page-record')", state="detached")
        assert errors == []
    finally:
        context.close()


# -- reports -----------------------------------------------------------------------------

def test_a_report_prints_and_downloads(open_page):
    page = logged_in_page(open_page)
    assert run(page, APPEND, [["jam-print-a", 5.0, 1]])[0] == "ok"
    text = run(page, """const report = task.price_list;
        report.param_by_name('title').value = 'Cheap things';
        const url = await new Promise(done => {
            report.on_open_report = (r, url) => done(url);   // instead of a new window
            report.process_report();
        });
        const first = await fetch(url), again = await fetch(url);
        return [first.status, await first.text(), again.status];""")
    status, body, again = text
    assert status == 200 and body.startswith("Cheap things\n") and "jam-print-a: 5.0" in body
    assert again == 404

"""``/ajax`` driven the way Heapkeeper's own client drives its server: jQuery
form POSTs (``$.ajax({type: 'post', dataType: 'json', data})``) whose every
value is ``'\\x00' + JSON.stringify(value)``, in Debian's chromium (through
playwright) against a real ``twistd -n hpxd`` running the demo app.

The page is served on the daemon's own origin by playwright (``page.route``),
so its requests to ``/ajax/...`` are same-origin, as Heapkeeper's pages are.
jQuery is the copy the PyPI package ``jam.py`` ships. Skipped when chromium,
playwright or jam.py is missing; failed instead when HPXD_REQUIRE_SERVICES=1.
"""

import pytest

from tests.support import Daemon, chromium, jam_js_file
from tests.web_http import PASSWORD, USER, web_config

# Heapkeeper's client, in its own terms: every value '\x00' + JSON, a form POST.
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="/hk-test/jquery.js"></script>
<script>
function encodeValue(value) { return '\\x00' + JSON.stringify(value); }
function ajaxQuery(url, args) {
  var data = {};
  $.each(args, function (key, value) { data[key] = encodeValue(value); });
  return new Promise(function (resolve) {
    $.ajax({url: url, dataType: 'json', data: data, type: 'post',
            success: function (result) { resolve({ok: true, result: result}); },
            error: function (xhr) {
              resolve({ok: false, status: xhr.status, body: xhr.responseJSON,
                       type: xhr.getResponseHeader('content-type')}); }});
  });
}
</script></head><body>hk test page</body></html>"""


def jquery_path():
    return jam_js_file("jquery.js", "its jquery.js drives the /ajax browser test")


@pytest.fixture(scope="module")
def browser():
    with chromium('the /ajax browser test') as launched:
        yield launched


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("ajax-browser"), web_config("hpxd.demo"),
               name="ajax-browser")
    try:
        yield d.start()
    finally:
        d.stop()


@pytest.fixture
def page(browser, daemon):
    """The test page on the daemon's origin, in a fresh context (no cookie)."""
    jquery = jquery_path()
    origin = f"http://127.0.0.1:{daemon.web_port}"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(10000)
        page.route(f"{origin}/hk-test/page.html",
                   lambda route: route.fulfill(body=PAGE, content_type="text/html"))
        page.route(f"{origin}/hk-test/jquery.js",
                   lambda route: route.fulfill(path=jquery, content_type="text/javascript"))
        page.goto(f"{origin}/hk-test/page.html")
        page.wait_for_function("typeof jQuery === 'function'")
        yield page
    finally:
        context.close()


def ajax(page, url, args):
    return page.evaluate("([url, args]) => ajaxQuery(url, args)", [url, args])


def test_values_travel_as_json_both_ways(page):
    assert ajax(page, "/ajax/add", {"a": 1, "b": 2}) == {"ok": True, "result": 3}
    assert ajax(page, "/ajax/add", {"a": "x", "b": "y"})["result"] == "xy"
    value = {"text": "é ü 😀 \u0000 & = %00", "list": [1, 2.5, None, True], "nested": {"a": []}}
    assert ajax(page, "/ajax/echo", {"value": value}) == {"ok": True, "result": value}


def test_an_error_reaches_jquerys_error_callback_as_json(page):
    refused = ajax(page, "/ajax/remember", {"key": "k", "value": 1})
    assert refused["ok"] is False and refused["status"] == 403
    assert refused["body"]["code"] == 406 and refused["body"]["error"]
    assert refused["type"] == "application/json; charset=utf-8"
    assert ajax(page, "/ajax/nothing", {})["status"] == 404


def test_the_session_cookie_carries_the_guests_data(page):
    assert [ajax(page, "/ajax/count", {})["result"] for _ in range(3)] == [1, 2, 3]


def test_a_login_in_the_page_is_the_session_of_later_calls(page):
    page.evaluate("""([user, password]) => $.ajax({url: '/session', type: 'post',
                     data: {user: user, password: password}})""", [USER, PASSWORD])
    assert ajax(page, "/ajax/whoami", {})["result"] == {"user_name": USER, "role": "user"}
    assert ajax(page, "/ajax/catalog.test", {"a": 2, "b": 3})["result"] == 5


def test_a_jquery_get_for_a_function_declared_get(page):
    got = page.evaluate("""() => new Promise(resolve => $.get('/ajax/echo',
                               {value: '\\x00[1, "two"]'}, resolve, 'json'))""")
    assert got == [1, "two"]
    refused = page.evaluate("""() => new Promise(resolve => $.get('/ajax/add',
                                   {a: '\\x001', b: '\\x002'}).fail(x => resolve(x.status)))""")
    assert refused == 405


def test_a_value_that_is_not_json_is_a_400(page):
    raw = page.evaluate("""() => new Promise(resolve => $.ajax({url: '/ajax/echo',
                             type: 'post', data: {value: '\\x00{'},
                             error: x => resolve([x.status, x.responseJSON])}))""")
    assert raw[0] == 400 and raw[1]["code"] == 900

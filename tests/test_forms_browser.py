"""The form door's client, /static/hpxd-forms.js, in a real browser (Debian's
chromium, driven by playwright) against a real ``twistd -n hpxd`` running
the demo app's contact form (/forms/contact, /forms/contact-list).

Two browser contexts are two users (ann and bob, role "user"). Every wait
is on a condition (playwright's expect / wait_for_*), never a fixed sleep.

Skipped when chromium or playwright is missing, failed instead when
HPXD_REQUIRE_SERVICES=1 (CI).
"""

import io
import re
import struct
import zlib

import pytest

from tests.forms_browser import (add_contact, http_log_in, logged_in_page, origin,
                                 wait_for_countries, config)
from tests.support import Daemon, chromium

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=10000)  # two shared cores: the default 5 s can be short


@pytest.fixture(scope="module")
def browser():
    with chromium("the form door's browser test") as launched:
        yield launched


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("forms"), config(), name="forms")
    try:
        d.start()
        wait_for_countries(d)
        yield d
    finally:
        d.stop()


@pytest.fixture
def pages(browser, daemon):
    """``pages(user)``: a logged-in page in a context of its own; all closed after."""
    opened = []

    def open_page(user="ann"):
        page = logged_in_page(browser, daemon, user)
        opened.append(page)
        return page

    yield open_page
    for page in opened:
        assert page.errors == [], page.errors  # no script error on any page
        page.context.close()


@pytest.fixture(scope="module")
def cookie(daemon):
    """ann's session for making contacts without a browser."""
    return http_log_in(daemon, "ann")


def url(daemon, path):
    return origin(daemon) + path


def open_form(page, daemon, record_id=None):
    page.goto(url(daemon, "/forms/contact" + (f"?r={record_id}" if record_id else "")))
    # the script has run once the tab id is filled
    expect(page.locator("input[name=tabUniqId]")).not_to_have_value("")


def png(width=40, height=30):
    """A small RGB PNG, made by hand (no image library needed)."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    rows = b"".join(b"\x00" + bytes([200, 60, 30]) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# -- load, validation, save --------------------------------------------------------------

def test_a_bad_email_highlights_its_field_and_saves_nothing(pages, daemon):
    page = pages()
    open_form(page, daemon)
    page.fill("#f-name", "Bad Mail")
    page.fill("#f-email", "not-an-address")
    page.click("button[value=save]")
    expect(page.locator("#group-email")).to_have_class(re.compile(r"\bhas-error\b"))
    expect(page.locator("#help-email")).to_have_text("E-mail is not an e-mail address")
    expect(page.locator("#f-email")).to_be_focused()
    expect(page.locator("#hpxd-alerts .hpxd-alert-error")).to_contain_text("e-mail address")
    assert page.url == url(daemon, "/forms/contact")  # no redirect on an error
    # fixed, the highlight goes and the record is saved
    page.fill("#f-email", "bad.mail@example.org")
    page.click("button[value=save]")
    page.wait_for_url(re.compile(r"/forms/contact\?r=\d+$"))
    expect(page.locator("#group-email")).not_to_have_class(re.compile(r"\bhas-error\b"))


def test_ticking_the_checkbox_shows_company_through_form_update(pages, daemon):
    page = pages()
    open_form(page, daemon)
    company = page.locator("#group-company")
    expect(company).to_be_hidden()
    with page.expect_response(lambda r: r.url.endswith("/forms/api/load")) as loaded:
        page.check("#f-has_company")
    answer = loaded.value.json()
    assert {"form-element": "company", "hidden": False, "disabled": False,
            "required": True} in answer["form-update"]
    expect(company).to_be_visible()
    expect(page.locator("#f-company")).to_have_attribute("required", "")
    page.uncheck("#f-has_company")
    expect(company).to_be_hidden()
    expect(page.locator("#f-company")).not_to_have_attribute("required", "")


def test_save_of_a_new_record_goes_to_its_url_and_save_close_to_the_list(pages, daemon):
    page = pages()
    open_form(page, daemon)
    page.fill("#f-name", "Redirected Rita")
    page.click("button[value=save]")
    page.wait_for_url(re.compile(r"/forms/contact\?r=\d+$"))
    record_id = int(page.url.rpartition("=")[2])
    expect(page.locator("h1")).to_have_text(f"Contact #{record_id}")
    expect(page.locator("#f-name")).to_have_value("Redirected Rita")
    hash_before = page.locator("#recordHashMd5").input_value()
    page.fill("#f-name", "Rita Closed")
    page.click("button[value='save,close']")
    page.wait_for_url(url(daemon, "/forms/contact-list"))
    expect(page.locator(f"#row-{record_id} td").first).to_have_text("Rita Closed")
    assert hash_before


def test_save_stays_and_updates_the_record_hash(pages, daemon, cookie):
    record_id = add_contact(daemon, cookie, name="Hash Hugo")
    page = pages()
    open_form(page, daemon, record_id)
    hash_field = page.locator("#recordHashMd5")
    before = hash_field.input_value()
    page.fill("#f-name", "Hash Hugo II")
    page.click("button[value=save]")
    expect(page.locator("#hpxd-alerts")).to_contain_text("Saved.")
    expect(hash_field).not_to_have_value(before)
    # saved twice in a row: the second save needs the new hash
    page.fill("#f-name", "Hash Hugo III")
    page.click("button[value=save]")
    expect(page.locator("#hpxd-alerts .hpxd-alert-info")).to_have_count(2)
    assert page.url == url(daemon, f"/forms/contact?r={record_id}")
    page.reload()
    expect(page.locator("#f-name")).to_have_value("Hash Hugo III")


# -- the record lock -----------------------------------------------------------------------

def test_a_second_user_editing_the_record_gets_the_modal_conflict_dialog(pages, daemon, cookie):
    record_id = add_contact(daemon, cookie, name="Locked Lena")
    ann, bob = pages("ann"), pages("bob")
    open_form(ann, daemon, record_id)
    with ann.expect_response(lambda r: "/forms/api/dirty" in r.url) as locked:
        ann.fill("#f-name", "Lena (ann edits)")
    assert locked.value.json()["status"] == "success"
    open_form(bob, daemon, record_id)
    with bob.expect_response(lambda r: "/forms/api/dirty" in r.url) as refused:
        bob.fill("#f-email", "bob@example.org")
    assert refused.value.json()["status"] == "conflict"
    dialog = bob.locator(".hpxd-modal [role=alertdialog]")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("another user is editing this record")
    reload = dialog.get_by_role("button", name="Reload")
    expect(reload).to_be_focused()
    expect(bob.locator("#f-name")).to_be_disabled()  # the form is read-only
    assert bob.evaluate("document.querySelector('main').inert") is True
    # the reload button reloads the page: a fresh form, no dialog
    with bob.expect_navigation():
        reload.click()
    expect(bob.locator(".hpxd-modal")).to_have_count(0)
    expect(bob.locator("#f-name")).to_be_enabled()
    # ann still holds the lock; when she saves it is released and bob may edit
    ann.click("button[value=save]")
    expect(ann.locator("#hpxd-alerts")).to_contain_text("Saved.")
    bob.reload()
    with bob.expect_response(lambda r: "/forms/api/dirty" in r.url) as free:
        bob.fill("#f-email", "bob@example.org")
    assert free.value.json()["status"] == "success"


def test_leaving_the_page_releases_the_lock(pages, daemon, cookie):
    record_id = add_contact(daemon, cookie, name="Leaving Leo")
    ann, bob = pages("ann"), pages("bob")
    open_form(ann, daemon, record_id)
    with ann.expect_response(lambda r: "/forms/api/dirty" in r.url):
        ann.fill("#f-name", "Leo (ann edits)")
    ann.goto(url(daemon, "/forms/contact-list"))  # pagehide: a beacon releases the lock
    open_form(bob, daemon, record_id)

    def bob_locks():
        with bob.expect_response(lambda r: "/forms/api/dirty" in r.url) as answer:
            bob.fill("#f-email", "bob@example.org")
        return answer.value.json()["status"]
    # the beacon may arrive a moment after the navigation: reload and try again
    tries = []
    while len(tries) < 20 and "success" not in tries:
        if tries:
            bob.reload()
        tries.append(bob_locks())
    assert tries[-1] == "success", f"the lock was not released when ann left: {tries}"
    expect(bob.locator(".hpxd-modal")).to_have_count(0)


# -- files and downloads -----------------------------------------------------------------

def test_an_uploaded_avatar_downloads_and_has_a_thumbnail(pages, daemon, cookie):
    record_id = add_contact(daemon, cookie, name="Avatar Ava")
    page = pages()
    open_form(page, daemon, record_id)
    image = png(200, 150)  # wider than the thumbnail's 96 pixels
    with page.expect_response(lambda r: "/forms/api/file" in r.url) as uploaded:
        page.set_input_files("#f-avatar", files=[{"name": "ava.png", "mimeType": "image/png",
                                                   "buffer": image}])
    file_id = uploaded.value.json()["file"]["id"]
    expect(page.locator("input[type=hidden][name=avatar]")).to_have_value(file_id)
    expect(page.locator("[data-file-name-for=avatar]")).to_have_text("ava.png")
    page.click("button[value=save]")
    expect(page.locator("#hpxd-alerts")).to_contain_text("Saved.")
    page.reload()
    expect(page.locator("input[type=hidden][name=avatar]")).to_have_value(file_id)
    link = page.locator("#group-avatar a[data-download]")
    expect(link).to_be_visible()
    answer = page.context.request.get(url(daemon, link.get_attribute("href")))
    assert answer.ok and answer.body() == image
    thumbnail = page.locator("#group-avatar img[data-download]")
    expect(thumbnail).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=thumbnail.element_handle())
    assert thumbnail.evaluate("img => img.naturalWidth") == 96
    small = page.context.request.get(url(daemon, thumbnail.get_attribute("src")))
    assert small.ok and small.headers["content-type"].startswith("image/")
    from PIL import Image
    assert Image.open(io.BytesIO(small.body())).size == (96, 72)


def test_removing_the_file_empties_the_field(pages, daemon):
    page = pages()
    open_form(page, daemon)
    with page.expect_response(lambda r: "/forms/api/file" in r.url):
        page.set_input_files("#f-avatar", files=[{"name": "gone.png", "mimeType": "image/png",
                                                   "buffer": png(4, 4)}])
    hidden = page.locator("input[type=hidden][name=avatar]")
    expect(hidden).not_to_have_value("")
    with page.expect_response(lambda r: "action=delete" in r.url) as removed:
        page.click("[data-file-delete=avatar]")
    assert removed.value.json()["status"] == "success"
    expect(hidden).to_have_value("")
    expect(page.locator("[data-file-name-for=avatar]")).to_have_text("")


# -- typeahead ------------------------------------------------------------------------------

def test_typing_swi_suggests_switzerland(pages, daemon):
    page = pages()
    open_form(page, daemon)
    page.locator("#f-country").press_sequentially("Swi")
    option = page.locator('#list-country option[value="Switzerland"]')
    expect(option).to_have_count(1)
    assert page.locator("#list-country option").count() == 1  # Sweden does not contain "swi"


# -- the table view --------------------------------------------------------------------------

def row_order(page, ids):
    """The ids among ``ids`` in the order the table shows them."""
    shown = page.eval_on_selector_all("table.hpxd-table tbody tr",
                                      "rows => rows.map(r => Number(r.dataset.dndId))")
    return [i for i in shown if i in ids]


def test_a_drag_and_drop_reorder_persists_after_a_reload(pages, daemon, cookie):
    ids = [add_contact(daemon, cookie, name=f"Dragged {n}") for n in "ABC"]
    first, _, last = ids
    page = pages()
    page.goto(url(daemon, "/forms/contact-list"))
    assert row_order(page, ids) == ids
    with page.expect_response(lambda r: "/forms/api/dragAndDrop" in r.url) as moved:
        page.locator(f"#row-{last}").drag_to(page.locator(f"#row-{first}"),
                                             target_position={"x": 20, "y": 3})
    answer = moved.value.json()
    assert answer["status"] == "success", answer
    assert "setTo=before" in moved.value.url
    page.wait_for_function("([a, b]) => document.getElementById(a).nextElementSibling"
                           " === document.getElementById(b)", arg=[f"row-{last}", f"row-{first}"])
    assert row_order(page, ids) == [last, first, ids[1]]
    page.reload()
    assert row_order(page, ids) == [last, first, ids[1]]


def test_a_saved_view_is_listed_and_applied_again(pages, daemon, cookie):
    for name, country in (("View Val", "Chile"), ("View Vic", "Chile"), ("View Zed", "Peru")):
        add_contact(daemon, cookie, name=name, country=country)
    page = pages()
    page.goto(url(daemon, "/forms/contact-list"))
    table = page.locator("table.hpxd-table")
    # sort by name, descending (two clicks), filter country "chil", hide e-mail
    name_head = table.locator("th", has_text="Name")
    name_head.click()
    name_head.click()
    expect(name_head).to_have_attribute("aria-sort", "descending")
    page.fill("input.hpxd-filter[data-column='3']", "chil")
    page.uncheck(".hpxd-columns input[data-column='1']")
    visible = table.locator("tbody tr:visible")
    expect(visible).to_have_count(2)
    with page.expect_response(lambda r: "/forms/api/save" in r.url) as saved:
        page.fill(".hpxd-save-view input[name=name]", "chile, z-a")
        page.click(".hpxd-save-view button[type=submit]")
    assert saved.value.json()["status"] == "success"
    body = saved.value.request.post_data_json
    assert body == {"name": "chile, z-a", "public": False, "tableId": "contact-list",
                    "view": {"columnSelection": [0, 2, 3], "filters": ["", "", "", "chil"],
                             "sortList": [[0, 1]]}}
    page.reload()
    expect(visible).to_have_count(page.locator("table.hpxd-table tbody tr").count())
    page.click("ul.hpxd-views button:text('chile, z-a')")
    expect(visible).to_have_count(2)
    expect(visible.first).to_contain_text("View Vic")
    expect(name_head).to_have_attribute("aria-sort", "descending")
    expect(table.locator("th", has_text="E-mail")).to_be_hidden()
    expect(page.locator("input.hpxd-filter[data-column='3']")).to_have_value("chil")
    name_head.click()  # a third click: the server's order again
    expect(name_head).to_have_attribute("aria-sort", "none")
    expect(visible.first).to_contain_text("View Val")  # saved first, so first in order


# -- the other lock modes and delete: tests/forms_app.py's notes ----------------------------

LOCK_SECONDS = 4


@pytest.fixture(scope="module")
def notes_daemon(tmp_path_factory):
    from tests.forms_http import forms_config
    from tests.support import free_port
    # Locks live LOCK_SECONDS unless extended: the page extends at half that.
    text = forms_config(free_port(), extra=f"[forms]\nrecord_lock_timeout_seconds = {LOCK_SECONDS}\n")
    d = Daemon(tmp_path_factory.mktemp("notes"), text, name="notes")
    try:
        yield d.start()
    finally:
        d.stop()


@pytest.fixture
def note_pages(browser, notes_daemon):
    """``note_pages(user)``: as ``pages``, on the notes app (alice, bob)."""
    from tests.forms_http import PASSWORDS
    opened = []

    def open_page(user):
        page = logged_in_page(browser, notes_daemon, user, password=PASSWORDS[user])
        opened.append(page)
        return page

    yield open_page
    for page in opened:
        assert page.errors == [], page.errors
        page.context.close()


def new_note(daemon, form, title):
    from tests.forms_http import User
    return User(daemon.web_port, "alice").new_record(form, {"title": title})


def test_an_advisory_lock_is_taken_over_with_the_take_over_button(note_pages, notes_daemon):
    record_id = new_note(notes_daemon, "memo", "Advisory memo")
    alice, bob = note_pages("alice"), note_pages("bob")
    for page in (alice, bob):
        page.goto(url(notes_daemon, f"/forms/memo?r={record_id}"))
        expect(page.locator("input[name=tabUniqId]")).not_to_have_value("")
    with alice.expect_response(lambda r: "/forms/api/dirty" in r.url) as locked:
        alice.fill("#f-title", "alice's memo")
    assert locked.value.json()["status"] == "success"
    with bob.expect_response(lambda r: "/forms/api/dirty" in r.url) as warned:
        bob.fill("#f-title", "bob's memo")
    assert warned.value.json()["status"] == "conflict_allow_force"
    warning = bob.locator("#hpxd-alerts .hpxd-alert-warning")
    expect(warning).to_be_visible()
    expect(bob.locator(".hpxd-modal")).to_have_count(0)  # not modal: bob may read on
    expect(bob.locator("#f-title")).to_be_enabled()
    with bob.expect_response(lambda r: "action=force" in r.url) as forced:
        warning.get_by_role("button", name="Take over").click()
    assert forced.value.json()["status"] == "success"
    expect(warning).to_have_count(0)
    # alice lost the lock: her save is refused, shown as an error, and she stays
    alice.click("button[value=save]")
    expect(alice.locator("#hpxd-alerts .hpxd-alert-error")).to_contain_text(
        "another user is editing this record")
    assert alice.url.endswith(f"/forms/memo?r={record_id}")
    bob.click("button[value=save]")
    expect(bob.locator("#hpxd-alerts")).to_contain_text("Saved.")
    # bob's save released the lock, but alice's form is stale now: refused again
    alice.click("button[value=save]")
    expect(alice.locator("#hpxd-alerts .hpxd-alert-error").last).to_contain_text(
        "changed by someone else")


def test_delete_asks_then_removes_the_record_and_goes_to_the_list(note_pages, notes_daemon):
    record_id = new_note(notes_daemon, "note", "Doomed note")
    page = note_pages("alice")
    page.goto(url(notes_daemon, f"/forms/note?r={record_id}"))
    expect(page.locator("input[name=tabUniqId]")).not_to_have_value("")
    asked = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.accept()
    page.once("dialog", answer)
    with page.expect_response(lambda r: "/forms/api/delete" in r.url) as deleted:
        page.click("button[data-action=delete]")
    assert deleted.value.ok  # its body is gone with the page it redirected away from
    assert asked == ["Delete this record?"]
    page.wait_for_url(url(notes_daemon, "/forms/note-list"))
    expect(page.locator(f"#row-{record_id}")).to_have_count(0)
    page.goto(url(notes_daemon, f"/forms/note?r={record_id}"))
    expect(page.locator("h1")).to_have_text("Error")


def test_a_locked_record_cannot_be_deleted_by_another_user(note_pages, notes_daemon):
    record_id = new_note(notes_daemon, "note", "Held note")
    alice, bob = note_pages("alice"), note_pages("bob")
    alice.goto(url(notes_daemon, f"/forms/note?r={record_id}"))
    with alice.expect_response(lambda r: "/forms/api/dirty" in r.url):
        alice.fill("#f-title", "alice holds it")
    bob.goto(url(notes_daemon, f"/forms/note?r={record_id}"))
    expect(bob.locator("input[name=tabUniqId]")).not_to_have_value("")
    bob.once("dialog", lambda dialog: dialog.accept())
    with bob.expect_response(lambda r: "/forms/api/delete" in r.url) as refused:
        bob.click("button[data-action=delete]")
    assert refused.value.json()["code"] == 406
    expect(bob.locator("#hpxd-alerts .hpxd-alert-error")).to_be_visible()
    assert bob.url.endswith(f"/forms/note?r={record_id}")  # no redirect on an error


def test_an_open_page_extends_its_lock_past_the_timeout(note_pages, notes_daemon):
    record_id = new_note(notes_daemon, "note", "Kept note")
    alice, bob = note_pages("alice"), note_pages("bob")
    alice.goto(url(notes_daemon, f"/forms/note?r={record_id}"))
    expect(alice.locator("form.hpxd-form")).to_have_attribute("data-lock-timeout",
                                                               str(LOCK_SECONDS))
    with alice.expect_response(lambda r: "action=lock" in r.url) as locked:
        alice.fill("#f-title", "alice keeps it")
    assert locked.value.json()["status"] == "success"
    for _ in range(3):  # every LOCK_SECONDS / 2: past the lock's own lifetime
        with alice.expect_response(lambda r: "action=extend" in r.url) as extended:
            pass
        assert extended.value.json()["status"] == "success"
    bob.goto(url(notes_daemon, f"/forms/note?r={record_id}"))
    expect(bob.locator("input[name=tabUniqId]")).not_to_have_value("")
    with bob.expect_response(lambda r: "/forms/api/dirty" in r.url) as refused:
        bob.fill("#f-title", "bob too")
    assert refused.value.json()["status"] == "conflict"


def test_a_double_click_on_save_saves_a_new_record_once(pages, daemon):
    page = pages()
    open_form(page, daemon)
    page.fill("#f-name", "Double Dora")
    saves = []
    page.on("request", lambda r: saves.append(r.url) if "/forms/api/save" in r.url else None)
    page.dblclick("button[value=save]")
    page.wait_for_url(re.compile(r"/forms/contact\?r=\d+$"))
    assert len(saves) == 1, saves
    page.goto(url(daemon, "/forms/contact-list"))
    expect(page.locator("table.hpxd-table tbody tr", has_text="Double Dora")).to_have_count(1)

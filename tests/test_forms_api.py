"""The form door (/forms, QFQ's protocol) against a real ``twistd -n hpxd``
running tests/forms_app.py: every endpoint and response kind, SIPs, record
hashes, locks, files, typeahead, drag and drop, saved views, bad input."""

import io
import json
import os
import re
import time
import uuid
import zipfile

import openpyxl
import pypdf
import pytest
from PIL import Image

from tests.forms_http import FORM_TYPE, User, forms_config, until
from tests.support import Daemon, free_port
from tests.web_http import request

MULTIPART_BOUNDARY = "----hpxd-forms-test"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The download root of tests/forms_app.py: two PDFs, a log, a symlink out."""
    root = tmp_path_factory.mktemp("forms-files")
    for name in ("a.pdf", "b.pdf"):
        writer = pypdf.PdfWriter()
        writer.add_blank_page(width=72, height=72)
        with open(root / name, "wb") as f:
            writer.write(f)
    (root / "app.log").write_text("".join(f"line {n}\n" for n in range(1, 101)))
    outside = tmp_path_factory.mktemp("forms-outside") / "secret.txt"
    outside.write_text("secret")
    (root / "link-out.txt").symlink_to(outside)
    return root


@pytest.fixture(scope="module")
def port(tmp_path_factory, files):
    web_port = free_port()
    daemon = Daemon(tmp_path_factory.mktemp("forms"), forms_config(web_port), name="forms")
    os.environ["HPXD_TEST_FORMS_FILES"] = str(files)  # the daemon inherits it
    try:
        daemon.start()
        yield web_port
    finally:
        del os.environ["HPXD_TEST_FORMS_FILES"]
        daemon.stop()


@pytest.fixture
def alice(port):
    return User(port, "alice")


@pytest.fixture
def bob(port):
    return User(port, "bob")


def ok(reply):
    body = reply.json()
    assert reply.status == 200 and body["status"] == "success", reply
    assert isinstance(body["message"], str)
    return body


def refused(reply, status, code, words=""):
    """An error Minimal Response: HTTP ``status``, error ``code``, a message."""
    assert reply.status == status, reply
    body = reply.json()
    assert body["status"] == "error" and body["code"] == code, body
    assert words in body["message"] and "Traceback" not in reply.text, body
    return body


def multipart(fields, filename, content, content_type="text/plain"):
    parts = [f'--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n" for name, value in fields.items()]
    body = "".join(parts).encode() + (
        f'--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n').encode()
    body += content + f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"}


def upload(user, page, name, filename, content, content_type="text/plain"):
    body, headers = multipart({"s": page.sip, "name": name}, filename, content, content_type)
    return user.send("POST", "/forms/api/file?action=upload", body, headers)


# -- pages ----------------------------------------------------------------------------

def test_a_new_form_page_has_its_sip_hash_and_client_script(alice):
    page = alice.page("note")
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", page.sip)
    assert page.hash == "" and page.hidden("tabUniqId") == ""
    assert '<script src="/static/hpxd-forms.js" defer></script>' in page.text
    assert page.reply.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.reply.headers["content-security-policy"]
    for field in ("title", "body", "size", "done", "due", "kind", "tag", "attachment"):
        assert f'id="group-{field}"' in page.text


def test_a_record_page_shows_its_values_escaped_and_its_hash(alice):
    record_id = alice.new_record("note", {"title": '<b>"x"</b>', "size": "3"})
    page = alice.page("note", record_id)
    assert 'value="&lt;b&gt;&quot;x&quot;&lt;/b&gt;"' in page.text and "<b>" not in page.text
    assert re.fullmatch(r"[0-9a-f]{32}", page.hash)
    assert 'data-record="%d"' % record_id in page.text


def test_a_guest_gets_a_page_and_a_session_cookie_for_its_sip(port):
    guest = User(port)
    page = guest.page("note")
    assert guest.cookie and page.sip
    body = ok(guest.post("load", {"s": page.sip, "title": "t"}))
    assert body["form-update"][0]["form-element"] == "title"


@pytest.mark.parametrize("path, status", [
    ("/forms/nosuch", 404), ("/forms/note?r=abc", 400), ("/forms/note?r=999999", 404),
    ("/forms/note?r=0", 400), ("/forms/note/more", 404)])
def test_a_page_that_is_not_there_is_an_html_error(alice, path, status):
    reply = alice.send("GET", path)
    assert reply.status == status, reply
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Error</h1>" in reply.text


def test_the_client_script_and_style_are_served(port):
    for name, kind in (("hpxd-forms.js", "text/javascript"), ("hpxd-forms.css", "text/css")):
        reply = request(port, "GET", f"/static/{name}")
        assert reply.status == 200 and reply.headers["content-type"].startswith(kind), reply


# -- load --------------------------------------------------------------------------------

def test_load_answers_form_update_and_element_update_from_the_rules(alice):
    page = alice.page("note")
    body = ok(alice.post("load", {"s": page.sip, "title": "four", "done": "true"}))
    update = {entry["form-element"]: entry for entry in body["form-update"]}
    assert update["body"]["hidden"] is True and update["title"]["required"] is True
    assert body["element-update"] == {"summary": {"content": "4 characters"}}
    body = ok(alice.post("load.php", {"s": page.sip, "title": "four"}))
    assert {e["form-element"]: e for e in body["form-update"]}["body"]["hidden"] is False


def test_load_refuses_a_field_the_form_does_not_have(alice):
    page = alice.page("note")
    refused(alice.post("load", {"s": page.sip, "nosuch": "1"}), 400, 413, "nosuch")


# -- SIPs ------------------------------------------------------------------------------

def test_a_sip_of_another_session_is_refused(alice, bob):
    page = alice.page("note")
    refused(bob.post("load", {"s": page.sip}), 403, 406, "another session")
    refused(bob.save(page, {"title": "stolen"}), 403, 406)


def test_a_tampered_or_unknown_sip_is_refused(alice):
    sip = alice.page("note").sip
    tampered = sip[:-1] + ("A" if sip[-1] != "A" else "B")
    refused(alice.post("load", {"s": tampered}), 403, 406, "unknown or expired")
    refused(alice.post("load", {"s": sip + "x"}), 400, 413, "SIP")
    refused(alice.post("load", {}), 400, 413, "SIP")


def test_a_changed_r_next_to_the_sip_is_refused(alice):
    first = alice.new_record("note", {"title": "one"})
    second = alice.new_record("note", {"title": "two"})
    page = alice.page("note", first)
    refused(alice.post("load", {"s": page.sip, "r": str(second)}), 403, 406, "(r)")
    ok(alice.post("load", {"s": page.sip, "r": str(first)}))


def test_a_sip_for_one_use_is_refused_for_another(alice):
    page = alice.page("note")
    refused(alice.get("typeahead", sip=page.sip, query="t"), 403, 406, "typeahead")
    refused(alice.post("load", {"s": page.typeahead_sip()}), 403, 406, "form")


def test_the_sips_of_a_session_end_with_its_logout(port):
    user = User(port, "alice")
    page = user.page("note")
    ok(user.post("load", {"s": page.sip}))
    cookie = user.cookie
    assert user.log_out().status == 200
    user.cookie = cookie  # the old cookie, sent again
    refused(user.post("load", {"s": page.sip}), 403, 406, "unknown or expired")


# -- save -------------------------------------------------------------------------------

def test_saving_a_new_record_redirects_to_its_own_form(alice):
    reply = alice.save(alice.page("note"), {"title": "new one", "size": "4", "done": "true",
                                            "due": "2024-05-06", "kind": "urgent"})
    body = ok(reply)
    record_id = body["record-id"]
    assert body["redirect"] == "url-skip-history"
    assert body["redirect-url"] == f"/forms/note?r={record_id}"
    page = alice.page("note", record_id)
    assert 'value="new one"' in page.text and 'value="2024-05-06"' in page.text
    assert 'name="done" value="true" checked' in page.text
    assert '<option value="urgent" selected>' in page.text


def test_saving_a_record_answers_its_new_hash_and_stays(alice):
    record_id = alice.new_record("note", {"title": "v1"})
    page = alice.page("note", record_id)
    body = ok(alice.save(page, {"title": "v2"}))
    assert body["redirect"] == "no" and body["alert"]["message"] == "Saved."
    assert body["alert"]["type"] == "info" and body["alert"]["timeout"] > 0
    new_hash = body["element-update"]["recordHashMd5"]["attr"]["value"]
    assert new_hash != page.hash and alice.page("note", record_id).hash == new_hash


def test_save_and_close_redirects_to_the_forms_close_url(alice):
    record_id = alice.new_record("note", {"title": "closing"})
    body = ok(alice.save(alice.page("note", record_id), {"title": "closed"}, "save,close"))
    assert (body["redirect"], body["redirect-url"]) == ("url", "/forms/note-list")
    body = ok(alice.save(alice.page("memo"), {"title": "memo"}, "save,close"))
    assert body["redirect"] == "close"  # a form without close_url: back one page


def test_a_stale_record_hash_is_refused_and_nothing_is_written(alice, bob):
    record_id = alice.new_record("note", {"title": "base"})
    stale = alice.page("note", record_id)
    ok(bob.save(bob.page("note", record_id), {"title": "bob's"}))
    refused(alice.save(stale, {"title": "alice's"}), 409, 416, "changed")
    assert 'value="bob&#x27;s"' in alice.page("note", record_id).text
    refused(alice.post("save", {"s": stale.sip, "title": "no hash"}), 400, 413,
            "recordHashMd5")


def test_a_validation_failure_names_the_field_and_writes_nothing(alice):
    page = alice.page("note")
    rows = alice.page("note-list").row_ids()
    cases = [({"title": ""}, "title", "required"), ({"title": "t", "size": "11"}, "size", "at most"),
             ({"title": "t", "size": "abc"}, "size", "whole number"),
             ({"title": "t", "due": "2024-13-01"}, "due", "date"),
             ({"title": "t", "kind": "other"}, "kind", "choices"),
             ({"title": "x" * 51}, "title", "longer than"),
             ({"title": "t", "body": "y" * 20000}, "body", "longer than"),
             ({"title": "t", "nosuch": "1"}, "nosuch", "not a field")]
    for values, field, words in cases:
        reply = alice.save(page, values)
        assert reply.status == 200, reply
        body = reply.json()
        assert body["status"] == "error" and body["field-name"] == field, (values, body)
        assert words in body["field-message"] and body["message"] == body["field-message"]
        assert body["redirect"] == "no"
    assert alice.page("note-list").row_ids() == rows


def test_a_viewer_may_not_save(port):
    vera = User(port, "vera")
    refused(vera.save(vera.page("note"), {"title": "mine"}), 403, 406, "create")


def test_a_bad_submit_reason_is_refused(alice):
    refused(alice.save(alice.page("note"), {"title": "t"}, "save,delete"), 400, 413,
            "submit_reason")


# -- bad bodies ---------------------------------------------------------------------------

GARBAGE = [
    (b"\xff\xfe=\xff", FORM_TYPE),
    (b"plain text", {"content-type": "text/plain"}),
    (b"{", {"content-type": "application/json"}),
    (b"[1, 2]", {"content-type": "application/json"}),
    (b"s=a&s=b", FORM_TYPE),
    (b"--x\r\nbroken", {"content-type": "multipart/form-data; boundary=x"}),
    ("&".join(f"f{n}=1" for n in range(300)).encode(), FORM_TYPE),
]


@pytest.mark.parametrize("body, headers", GARBAGE)
@pytest.mark.parametrize("endpoint", ["save", "load.php", "delete", "dirty", "file"])
def test_garbage_bodies_get_an_error_minimal_response_and_the_daemon_lives(
        alice, endpoint, body, headers):
    reply = alice.send("POST", f"/forms/api/{endpoint}", body, headers)
    assert reply.status == 400, reply
    answer = reply.json()
    assert answer["status"] == "error" and answer["code"] in (410, 413, 900), answer
    assert answer["message"] and "Traceback" not in reply.text
    ok(alice.post("load", {"s": alice.page("note").sip}))


def test_methods_paths_and_origins(alice, port):
    reply = alice.send("GET", "/forms/api/save")
    refused(reply, 405, 418)
    assert reply.headers["allow"] == "POST"
    refused(alice.send("GET", "/forms/api/nosuch"), 404, 404)
    refused(alice.send("GET", "/forms/api/load/x"), 404, 404)
    page = alice.page("note")
    reply = alice.send("POST", "/forms/api/load", f"s={page.sip}",
                       {**FORM_TYPE, "origin": "http://evil.example"})
    refused(reply, 403, 406)


# -- delete -------------------------------------------------------------------------------

def test_delete_removes_the_record_and_redirects(alice):
    record_id = alice.new_record("note", {"title": "doomed"})
    body = ok(alice.post("delete.php", {"s": alice.page("note", record_id).sip}))
    assert (body["redirect"], body["redirect-url"]) == ("url", "/forms/note-list")
    assert alice.send("GET", f"/forms/note?r={record_id}").status == 404


def test_delete_is_refused_while_another_session_holds_the_lock(alice, bob):
    record_id = alice.new_record("note", {"title": "held"})
    bobs = bob.page("note", record_id)
    ok(bob.dirty(bobs, "lock"))
    refused(alice.post("delete", {"s": alice.page("note", record_id).sip}), 403, 406,
            "editing")
    assert alice.send("GET", f"/forms/note?r={record_id}").status == 200
    ok(bob.dirty(bobs, "release"))
    ok(alice.post("delete", {"s": alice.page("note", record_id).sip}))


def test_delete_of_a_new_form_is_refused(alice):
    refused(alice.post("delete", {"s": alice.page("note").sip}), 400, 413, "new record")


# -- record locks (dirty) --------------------------------------------------------------

def test_an_exclusive_lock_conflicts_for_another_session(alice, bob):
    record_id = alice.new_record("note", {"title": "locked"})
    mine, theirs = alice.page("note", record_id), bob.page("note", record_id)
    assert ok(alice.dirty(mine, "lock")) == {"status": "success", "message": ""}
    body = bob.dirty(theirs, "lock").json()
    assert body["status"] == "conflict" and "editing" in body["message"], body
    assert body["alert"] == {"message": body["message"], "type": "warning", "timeout": 0,
                             "modal": True, "buttons": [{"label": "Reload",
                                                         "eventName": "reload", "focus": True}]}
    assert bob.dirty(theirs, "force").json()["status"] == "conflict"  # nothing to force
    refused(bob.save(theirs, {"title": "bob's"}), 403, 406, "editing")
    ok(alice.dirty(mine, "extend"))
    ok(alice.dirty(mine, "release"))
    ok(bob.dirty(theirs, "lock"))


def test_an_advisory_lock_allows_a_forced_take_over(alice, bob):
    record_id = alice.new_record("memo", {"title": "advice"})
    mine, theirs = alice.page("memo", record_id), bob.page("memo", record_id)
    ok(alice.dirty(mine, "lock"))
    body = bob.dirty(theirs, "lock").json()
    assert body["status"] == "conflict_allow_force" and "take it over" in body["message"]
    assert body["alert"]["modal"] is False
    assert [b["eventName"] for b in body["alert"]["buttons"]] == ["force", "cancel"]
    body = ok(bob.dirty(theirs, "force"))
    assert "took over" in body["message"]
    assert alice.dirty(mine, "lock").json()["status"] == "conflict_allow_force"
    ok(bob.save(theirs, {"title": "bob's advice"}))


def test_the_same_session_in_another_tab_is_another_editor(alice):
    record_id = alice.new_record("note", {"title": "tabs"})
    page = alice.page("note", record_id)
    ok(alice.dirty(page, "lock"))
    alice.tab = uuid.uuid4().hex
    assert alice.dirty(page, "lock").json()["status"] == "conflict"


def test_a_lock_with_a_stale_hash_is_an_error(alice, bob):
    record_id = alice.new_record("note", {"title": "before"})
    stale = alice.page("note", record_id)
    ok(bob.save(bob.page("note", record_id), {"title": "after"}))
    body = alice.dirty(stale, "lock").json()
    assert body["status"] == "error" and "changed" in body["message"], body


def test_a_lock_for_a_record_that_is_gone_or_a_new_one(alice):
    record_id = alice.new_record("note", {"title": "short-lived"})
    page = alice.page("note", record_id)
    ok(alice.post("delete", {"s": alice.page("note", record_id).sip}))
    refused(alice.dirty(page, "lock"), 404, 404, "no record")
    assert ok(alice.dirty(alice.page("note"), "lock"))["message"] == ""  # a new record


def test_bad_lock_calls_are_refused(alice):
    page = alice.page("note", alice.new_record("note", {"title": "bad calls"}))
    refused(alice.dirty(page, "steal"), 400, 413, "action")
    refused(alice.get("dirty", s=page.sip, action="lock", tabUniqId="has space"), 400, 413)
    refused(alice.get("dirty", action="lock"), 400, 413, "SIP")


def test_a_lock_in_none_mode_never_conflicts(alice, bob):
    record_id = alice.new_record("free", {"title": "open to all"})
    ok(alice.dirty(alice.page("free", record_id), "lock"))
    ok(bob.dirty(bob.page("free", record_id), "lock"))


def test_a_save_releases_the_savers_lock(alice, bob):
    record_id = alice.new_record("note", {"title": "save frees"})
    page = alice.page("note", record_id)
    ok(alice.dirty(page, "lock"))
    ok(alice.save(page, {"title": "saved"}))
    ok(bob.dirty(bob.page("note", record_id), "lock"))


# -- files -----------------------------------------------------------------------------

def test_an_upload_gives_the_field_a_file_id_that_a_save_keeps(alice):
    page = alice.page("note")
    body = ok(upload(alice, page, "attachment", "notes.txt", b"hello file"))
    file_id = body["file"]["id"]
    assert body["form-update"] == [{"form-element": "attachment", "value": file_id}]
    assert body["file"]["name"] == "notes.txt" and body["file"]["size"] == 10
    record_id = ok(alice.save(page, {"title": "with file", "attachment": file_id}))["record-id"]
    assert f'name="attachment" value="{file_id}"' in alice.page("note", record_id).text
    download = alice.send("GET", f"/download/{file_id}")
    assert download.status == 200 and download.raw == b"hello file"


def test_a_replaced_file_is_deleted_with_the_save(alice):
    page = alice.page("note")
    first = ok(upload(alice, page, "attachment", "a.txt", b"first"))["file"]["id"]
    record_id = ok(alice.save(page, {"title": "f", "attachment": first}))["record-id"]
    page = alice.page("note", record_id)
    second = ok(upload(alice, page, "attachment", "b.txt", b"second"))["file"]["id"]
    ok(alice.save(page, {"title": "f", "attachment": second}))
    assert alice.send("GET", f"/download/{first}").status == 404
    assert alice.send("GET", f"/download/{second}").raw == b"second"


def test_file_delete_clears_the_field_and_drops_an_unsaved_upload(alice):
    page = alice.page("note")
    file_id = ok(upload(alice, page, "attachment", "tmp.txt", b"tmp"))["file"]["id"]
    body = ok(alice.post("file", {"s": page.sip, "name": "attachment", "value": file_id},
                         {"action": "delete"}))
    assert body["form-update"] == [{"form-element": "attachment", "value": ""}]
    assert alice.send("GET", f"/download/{file_id}").status == 404


def test_bad_uploads_are_refused(alice):
    page = alice.page("note")
    refused(upload(alice, page, "attachment", "evil.exe", b"MZ"), 400, 413, "ending in")
    refused(upload(alice, page, "title", "a.txt", b"x"), 400, 413, "not a file field")
    body = ok(upload(alice, page, "attachment", "../../etc/passwd.txt", b"x"))
    assert body["file"]["name"] == "passwd.txt"
    refused(alice.post("file", {"s": page.sip, "name": "attachment"}, {"action": "rename"}),
            400, 413, "action")
    refused(alice.send("POST", "/forms/api/file?action=upload", "s=x", FORM_TYPE), 400, 413,
            "multipart")
    refused(User(alice.port, "vera").send("POST", "/forms/api/file?action=upload",
                                          *multipart({"s": page.sip, "name": "attachment"},
                                                     "a.txt", b"x")), 403, 406)


# -- typeahead --------------------------------------------------------------------------

def test_typeahead_suggests_matching_records_under_either_sip_name(alice):
    page = alice.page("note")
    sip = page.typeahead_sip()

    def suggestions(**params):
        return ok(alice.get("typeahead.php", **params))["typeahead"]
    until(lambda: suggestions(sip=sip, query="Swi"))  # the tags are added at start
    assert suggestions(sip=sip, query="Swi") == [{"key": "Switzerland", "value": "Switzerland"}]
    assert suggestions(s=sip, query="swi") == [{"key": "Switzerland", "value": "Switzerland"}]
    assert len(suggestions(sip=sip, query="tag")) == 20  # limited
    assert suggestions(sip=sip, query="%") == []  # a LIKE wildcard is a plain character
    refused(alice.get("typeahead", sip=sip, query="q" * 101), 400, 413, "query")


# -- table views: drag and drop, saved views ------------------------------------------

def test_a_drag_and_drop_reorder_persists(alice):
    ids = [alice.new_record("note", {"title": f"row {n}"}) for n in range(3)]
    view = alice.page("note-list")
    order = view.row_ids()
    assert order[-3:] == ids
    body = ok(alice.get("dragAndDrop", s=view.table_sip(), dragId=ids[2], dragPosition=3,
                        setTo="before", hoverId=ids[0], hoverPosition=1))
    assert body["element-update"][f"row-{ids[2]}"]["attr"]["data-dnd-position"]
    order = alice.page("note-list").row_ids()
    assert order[-3:] == [ids[2], ids[0], ids[1]]
    ok(alice.get("dragAndDrop.php", s=view.table_sip(), dragId=ids[2], setTo="after",
                 hoverId=ids[1]))
    assert alice.page("note-list").row_ids()[-3:] == [ids[0], ids[1], ids[2]]


def test_a_drag_onto_a_record_of_another_form_is_refused(alice):
    mine = alice.new_record("note", {"title": "mine"})
    view = alice.page("note-list")
    before = view.row_ids()
    # Ids count per table: a record of the other table whose id no note has.
    theirs = alice.new_record("other", {"title": "theirs"})
    while theirs in before:
        theirs = alice.new_record("other", {"title": "theirs"})
    assert theirs in alice.page("other-list").row_ids()
    refused(alice.get("dragAndDrop", s=view.table_sip(), dragId=mine, setTo="after",
                      hoverId=theirs), 400, 413, "records of this table")
    refused(alice.get("dragAndDrop", s=view.table_sip(), dragId=mine, setTo="over",
                      hoverId=mine), 400, 413, "setTo")
    refused(alice.get("dragAndDrop", s=view.table_sip(), dragId="x", setTo="after",
                      hoverId=mine), 400, 413, "whole number")
    refused(alice.get("dragAndDrop", s=alice.page("note").sip, dragId=mine, setTo="after",
                      hoverId=mine), 403, 406, "table")
    assert alice.page("note-list").row_ids() == before


def test_a_saved_view_is_listed_for_its_owner_and_public_ones_for_all(alice, bob, port):
    sip = alice.page("note-list").table_sip()
    view = {"columnSelection": [0, 1], "filters": ["", "3"], "sortList": [[1, 0]]}

    def save_view(user, sip, body):
        return user.send("POST", f"/forms/api/save?s={sip}", json.dumps(body),
                         {"content-type": "application/json"})
    ok(save_view(alice, sip, {"name": "mine", "public": False, "tableId": "note-list",
                              "view": view}))
    ok(save_view(alice, sip, {"name": "everyone's", "public": True, "tableId": "note-list",
                              "view": view}))
    text = alice.page("note-list").text
    assert ">mine</button>" in text and ">everyone&#x27;s</button>" in text
    text = bob.page("note-list").text
    assert ">mine</button>" not in text and ">everyone&#x27;s</button>" in text
    refused(save_view(alice, sip, {"name": "x", "public": False, "tableId": "other-list",
                                   "view": view}), 400, 413, "tableId")
    refused(save_view(alice, sip, {"name": "x", "public": "yes", "tableId": "note-list",
                                   "view": view}), 400, 413, "public")
    refused(save_view(alice, sip, {"name": "x", "public": False, "tableId": "note-list",
                                   "view": {"sortList": "1"}}), 400, 413, "sortList")
    guest = User(port)
    guest_sip = guest.page("note-list").table_sip()
    refused(save_view(guest, guest_sip, {"name": "g", "public": False, "tableId": "note-list",
                                         "view": view}), 403, 406, "log in")
    refused(save_view(guest, guest_sip, {"name": "g", "public": True, "tableId": "note-list",
                                         "view": view}), 403, 406, "edit")


# -- downloads ---------------------------------------------------------------------------

def png(width, height):
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def fetch(user, href):
    reply = user.send("GET", href)
    assert reply.status == 200, reply
    return reply


def test_a_file_fields_download_and_thumbnail(alice):
    page = alice.page("note")
    image = png(64, 32)
    file_id = ok(upload(alice, page, "attachment", "pic.png", image, "image/png"))["file"]["id"]
    record_id = ok(alice.save(page, {"title": "pic", "attachment": file_id}))["record-id"]
    page = alice.page("note", record_id)
    reply = fetch(alice, page.download_href("attachment"))
    assert reply.raw == image and reply.headers["content-type"] == "image/png"
    assert reply.headers["content-disposition"].startswith('inline; filename="pic.png"')
    assert reply.headers["pragma"] == "no-cache" and reply.headers["expires"] == "0"
    assert reply.headers["content-length"] == str(len(image))
    thumb = Image.open(io.BytesIO(fetch(alice, page.download_href("thumb")).raw))
    assert thumb.format == "PNG" and thumb.size == (20, 10)


def test_a_download_as_json_for_the_clipboard(alice):
    page = alice.page("note")
    file_id = ok(upload(alice, page, "attachment", "clip.txt", "copy me ✓".encode()))["file"]["id"]
    record_id = ok(alice.save(page, {"title": "clip", "attachment": file_id}))["record-id"]
    reply = fetch(alice, alice.page("note", record_id).download_href("attachment_text"))
    assert reply.json() == {"status": "success", "message": "", "text": "copy me ✓"}


def test_monitor_pdf_zip_and_excel_downloads(alice):
    alice.new_record("note", {"title": "for the export", "size": "7"})
    page = alice.page("note")
    assert fetch(alice, page.download_href("log")).text == "line 98\nline 99\nline 100\n"
    pdf = pypdf.PdfReader(io.BytesIO(fetch(alice, page.download_href("pdfs")).raw))
    assert len(pdf.pages) == 2
    bundle = zipfile.ZipFile(io.BytesIO(fetch(alice, page.download_href("bundle")).raw))
    assert sorted(bundle.namelist()) == ["a.pdf", "app.log"]
    reply = fetch(alice, alice.page("note-list").download_href("export"))
    assert 'filename="notes.xlsx"' in reply.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(reply.raw)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("Title", "Body", "Size")
    assert ("for the export", 7) in [(row[0], row[2]) for row in rows[1:]]


def test_a_download_never_leaves_its_root(alice):
    href = alice.page("note").download_href("any")
    assert fetch(alice, href + "&path=a.pdf").raw.startswith(b"%PDF")
    for path, status, code in (("../forms-outside/secret.txt", 403, 406),
                               ("/etc/passwd", 403, 406), ("link-out.txt", 403, 406),
                               ("a.pdf%00.txt", 403, 406), ("nosuch.pdf", 404, 404)):
        reply = alice.send("GET", href + "&path=" + path)
        assert reply.status in (status, 400), (path, reply)
        assert reply.json()["status"] == "error" and "secret" not in reply.text


def test_a_download_sip_is_its_sessions_and_for_downloads_only(alice, bob):
    page = alice.page("note")
    refused(bob.send("GET", page.download_href("log")), 403, 406, "another session")
    refused(alice.get("download", s=page.sip), 403, 406, "download")
    refused(alice.get("download.php", s="x" * 32), 403, 406)


# -- the lock timeout ----------------------------------------------------------------------

LOCK_SECONDS = 3
SIP_SECONDS = 4  # [sessions] lifespan_seconds: a SIP's time to live too


@pytest.fixture(scope="module")
def short_locks(tmp_path_factory):
    """A daemon whose record locks last LOCK_SECONDS, sessions and SIPs SIP_SECONDS."""
    web_port = free_port()
    config = forms_config(web_port, extra=f"[forms]\nrecord_lock_timeout_seconds = "
                                          f"{LOCK_SECONDS}\n[sessions]\nlifespan_seconds = "
                                          f"{SIP_SECONDS}\n")
    daemon = Daemon(tmp_path_factory.mktemp("forms-locks"), config, name="forms-locks")
    try:
        daemon.start()
        yield web_port
    finally:
        daemon.stop()


def test_a_lock_that_is_not_extended_frees_itself_after_its_timeout(short_locks):
    alice, bob = User(short_locks, "alice"), User(short_locks, "bob")
    record_id = alice.new_record("note", {"title": "timed"})
    mine, theirs = alice.page("note", record_id), bob.page("note", record_id)
    locked_at = time.monotonic()
    ok(alice.dirty(mine, "lock"))
    answer = bob.dirty(theirs, "lock").json()
    if time.monotonic() - locked_at < LOCK_SECONDS - 0.5:  # (a slow machine may be past it)
        assert answer["status"] == "conflict" and "until" in answer["message"], answer
    until(lambda: bob.dirty(theirs, "lock").json()["status"] == "success",
               timeout=LOCK_SECONDS + 10)
    assert time.monotonic() - locked_at >= LOCK_SECONDS
    assert alice.dirty(mine, "lock").json()["status"] == "conflict"  # bob's now


def test_a_record_never_takes_a_file_that_is_no_upload_to_its_form(alice):
    page = alice.page("note")
    body = alice.save(page, {"title": "t", "attachment": "made-up-id"}).json()
    assert body["status"] == "error" and body["field-name"] == "attachment", body
    assert "not a file uploaded to this form" in body["field-message"]


def test_file_delete_never_deletes_another_records_file(alice):
    page = alice.page("note")
    file_id = ok(upload(alice, page, "attachment", "kept.txt", b"kept"))["file"]["id"]
    ok(alice.save(page, {"title": "holder", "attachment": file_id}))
    other = alice.page("note")
    ok(alice.post("file", {"s": other.sip, "name": "attachment", "value": file_id},
                  {"action": "delete"}))
    assert alice.send("GET", f"/download/{file_id}").raw == b"kept"


def test_a_sip_unused_for_its_time_to_live_expires_while_its_session_lives(short_locks):
    alice = User(short_locks, "alice")
    page = alice.page("note")
    issued = time.monotonic()
    unused = page.typeahead_sip()
    while time.monotonic() - issued < SIP_SECONDS + 1:  # the form's SIP keeps the session
        ok(alice.post("load", {"s": page.sip}))
        time.sleep(0.2)
    refused(alice.get("typeahead", sip=unused, query="t"), 403, 406, "unknown or expired")
    ok(alice.post("load", {"s": page.sip}))


def test_a_page_takes_get_and_the_forms_root_is_no_page(alice):
    reply = alice.send("POST", "/forms/note", "x=1", FORM_TYPE)
    assert reply.status == 405 and reply.headers["allow"] == "GET, HEAD", reply
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    refused(alice.send("GET", "/forms"), 404, 404, "/forms/<form>")
    assert alice.send("GET", "/forms/note?r=1&r=2").status == 400


def test_a_file_delete_body_must_be_small_and_urlencoded(alice):
    page = alice.page("note")
    refused(alice.send("POST", "/forms/api/file?action=delete", json.dumps({"s": page.sip}),
                       {"content-type": "application/json"}), 400, 413, "urlencoded")
    big = f"s={page.sip}&name=attachment&value=" + "x" * (64 * 1024)
    refused(alice.send("POST", "/forms/api/file?action=delete", big, FORM_TYPE), 400, 413,
            "too large")

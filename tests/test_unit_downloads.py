"""hpxd/core/downloads.py: form downloads declared (form.download,
task.download_root) and produced in a real node (memory backend, SQLite
records, the file store): every mode's bytes, json output, the roots no
path leaves, privileges and the refusals."""

import io
import os
import zipfile

import pytest
import pytest_twisted
from openpyxl import load_workbook
from PIL import Image
from pypdf import PdfReader, PdfWriter

from hpxd.core import downloads, errors
from hpxd.core.app import Task
from hpxd.core.forms import FormField
from hpxd.core.passwords import hash_password
from hpxd.core.sessions import Session
from tests.support import start_service

ENV = {"door": "unit", "peer": "test"}
FIELDS = {"title": "text", "doc": "text", "pic": "text", "extra": "text"}
ROLES = {
    "viewer": {"privileges": {"*": ["view"]}},
    "user": {"privileges": {"*": ["view", "create", "edit", "delete"]}},
    "nobody": {"privileges": {}},
    "things_only": {"privileges": {"things": ["view"]}},
    "guest": {"privileges": {}},
}


def pdf_bytes(pages):
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def png_bytes(width, height):
    out = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(out, "PNG")
    return out.getvalue()


def make_dirs(tmp_path):
    files, logs, outside = tmp_path / "files", tmp_path / "logs", tmp_path / "outside"
    for d in (files, logs, outside, files / "sub"):
        d.mkdir()
    (files / "a.txt").write_text("alpha\n")
    (files / "sub" / "a.txt").write_text("other alpha\n")
    (files / "one.pdf").write_bytes(pdf_bytes(2))
    (files / "two.pdf").write_bytes(pdf_bytes(3))
    (files / "photo.png").write_bytes(png_bytes(600, 300))
    (files / "blob.bin").write_bytes(b"\x00\x01\xff")
    (files / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    (logs / "app.log").write_text("".join(f"line {i}\n" for i in range(500)))
    (outside / "secret.txt").write_text("secret\n")
    os.symlink(outside / "secret.txt", files / "leak.txt")
    os.symlink(outside, files / "leakdir")
    os.symlink(files / "sub" / "a.txt", files / "alias.txt")  # leads inside: allowed
    os.mkfifo(files / "pipe")  # opened, it would block a reader until a writer comes
    return files, logs


def make_app(tmp_path):
    files, logs = make_dirs(tmp_path)
    task = Task("dl")
    task.download_root("files", files)
    task.download_root("logs", logs)
    things = task.item("things", fields=dict(FIELDS))
    things.uploads(["txt", "pdf", "png", "bin"])
    task.item("private").uploads(["png"])
    form = things.form("thing", ["title", FormField("doc", "file"), FormField("pic", "file"),
                                 FormField("extra", label="Extra notes")])
    form.download("doc", field="doc")
    form.download("doc_text", field="doc", output="json")
    form.download("a_file", path="files:a.txt")
    form.download("bundle", "zip", fields=["doc", "pic"],
                  paths=["files:a.txt", "files:sub/a.txt"])
    form.download("pdfs", "pdf", paths=["files:one.pdf", "files:two.pdf"],
                  filename="../all.pdf")
    form.download("pdf_and_text", "pdf", paths=["files:one.pdf", "files:a.txt"])
    form.download("thumb", "thumbnail", path="files:photo.png", width=100)
    form.download("thumb_pic", "thumbnail", field="pic")
    form.download("thumb_text", "thumbnail", path="files:a.txt")
    form.download("log", "monitor", path="logs:app.log", tail=3)
    form.download("log_json", "monitor", path="logs:app.log", tail=2, output="json")
    form.download("pick", client_path="files")
    form.download("pick_json", client_path="files", output="json")
    form.download("sheet", "excel")
    form.download("guarded", path="files:a.txt", requires="edit")
    return task


@pytest_twisted.async_yield_fixture
async def node(tmp_path):
    raw = {"server": {"data_dir": str(tmp_path / "data"), "shutdown_timeout": 2},
           "tcp": {"listen": []}, "web": {"listen": []}, "roles": ROLES,
           "users": [{"name": "ed", "password_hash": hash_password("pw", log2_n=10),
                      "role": "user"}]}
    service = await start_service(raw, make_app(tmp_path))
    yield service.node
    await service.stopService()


def as_role(role):
    return Session.transient_guest(role)


def form_of(node):
    return node.task.form_by_name("thing")


def produce(node, name, record=None, params=None, role="viewer"):
    return downloads.produce(node, as_role(role), form_of(node).downloads[name], record,
                             params or {})


async def upload(node, name, data, item="things"):
    stored = await node.files.upload(as_role("user"), item, name, "application/x-test",
                                     [data])
    return stored["id"]


# -- declaration -------------------------------------------------------------------------


def declared(tmp_path):
    (tmp_path / "root").mkdir(exist_ok=True)
    task = Task("decl")
    task.download_root("files", tmp_path / "root")
    things = task.item("things", fields=dict(FIELDS))
    return task, things.form("thing", ["title", FormField("doc", "file")])


@pytest.mark.parametrize("args, kwargs, message", [
    (("x", "tar"), {"path": "files:a"}, "mode must be one of"),
    (("x", "html"), {"path": "files:a"}, "converting HTML to PDF is not supported"),
    (("x",), {"field": "title"}, "'title' is not a file field"),
    (("x",), {"field": "nope"}, "'nope' is not a file field"),
    (("x",), {"path": "elsewhere:a.txt"}, "'elsewhere' is not a download root"),
    (("x",), {"client_path": "elsewhere"}, "'elsewhere' is not a download root"),
    (("x",), {"path": "a.txt"}, "must be written '<root>:<relative path>'"),
    (("x",), {"path": "files:../a.txt"}, "must not contain '..'"),
    (("x",), {"path": "files:/etc/passwd"}, "must be relative"),
    (("x",), {"path": "files:a\\b"}, "backslashes"),
    (("x",), {"path": "files:a\x00b"}, "NUL"),
    (("x",), {}, "needs a source"),
    (("x",), {"paths": ["files:a", "files:b"]}, "a file download takes one source, not 2"),
    (("x", "excel"), {"field": "doc"}, "takes no sources"),
    (("x", "monitor"), {"field": "doc"}, "not a file field"),
    (("x", "zip"), {"path": "files:a", "output": "json"}, "json output is for"),
    (("x",), {"path": "files:a", "width": 10}, "width is for a thumbnail"),
    (("x", "monitor"), {"path": "files:a", "tail": 0}, "tail must be a whole number"),
    (("x", "thumbnail"), {"path": "files:a", "width": 99999}, "width must be"),
    (("x",), {"field": "doc", "fields": ["doc"]}, "give field or fields, not both"),
    (("x",), {"path": "files:a", "requires": "admin"}, "requires must be one of"),
    (("x",), {"path": "files:a", "output": "xml"}, "output must be one of"),
    (("x-y",), {"path": "files:a"}, "must be a Python identifier"),
])
def test_declaration_errors_say_what_is_wrong(tmp_path, args, kwargs, message):
    _, form = declared(tmp_path)
    with pytest.raises(ValueError, match=message.replace("\\", "\\\\").replace("(", r"\(")):
        form.download(*args, **kwargs)
    assert form.downloads == {}


def test_a_download_name_is_declared_once(tmp_path):
    _, form = declared(tmp_path)
    made = form.download("doc", field="doc")
    assert form.downloads == {"doc": made} and made.mode == "file" and made.width == 150
    with pytest.raises(ValueError, match="already has a download 'doc'"):
        form.download("doc", field="doc")


def test_download_roots_are_existing_directories_with_identifier_names(tmp_path):
    task = Task("roots")
    assert task.download_root("a", str(tmp_path)) == str(tmp_path)
    assert task.download_roots == {"a": str(tmp_path)}
    with pytest.raises(ValueError, match="already has a download root 'a'"):
        task.download_root("a", str(tmp_path))
    with pytest.raises(ValueError, match="not an existing directory"):
        task.download_root("b", str(tmp_path / "missing"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not an existing directory"):
        task.download_root("b", str(tmp_path / "f"))
    with pytest.raises(ValueError, match="must be a Python identifier"):
        task.download_root("b-c", str(tmp_path))


def test_zip_member_names_are_base_names_never_repeated():
    assert downloads.member_names(["a.txt", "../x/a.txt", "A.txt", "b", ""]) == [
        "a.txt", "a (2).txt", "A (3).txt", "b", "file"]


# -- modes -------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_file_mode_gives_a_field_file_or_a_root_file_as_it_is(node):
    doc = await upload(node, "report.txt", b"hello\n")
    made = await produce(node, "doc", {"doc": doc})
    assert (made.name, made.content_type, made.data) == (
        "report.txt", "application/x-test", b"hello\n")
    made = await produce(node, "a_file")
    assert (made.name, made.content_type, made.data) == ("a.txt", "text/plain", b"alpha\n")


@pytest_twisted.ensureDeferred
async def test_an_empty_file_field_is_not_found(node):
    for record in (None, {"doc": ""}, {"doc": None}):
        with pytest.raises(errors.FunctionNotFound, match="no file in doc"):
            await produce(node, "doc", record)


@pytest_twisted.ensureDeferred
async def test_zip_mode_packs_every_source_under_distinct_names(node):
    record = {"doc": await upload(node, "a.txt", b"from the store"),
              "pic": await upload(node, "pic.png", png_bytes(5, 5))}
    made = await produce(node, "bundle", record)
    assert (made.name, made.content_type) == ("thing-bundle.zip", "application/zip")
    archive = zipfile.ZipFile(io.BytesIO(made.data))
    assert archive.namelist() == ["a.txt", "pic.png", "a (2).txt", "a (3).txt"]
    assert archive.read("a.txt") == b"from the store"
    assert archive.read("a (2).txt") == b"alpha\n"
    assert archive.read("a (3).txt") == b"other alpha\n"


@pytest_twisted.ensureDeferred
async def test_pdf_mode_concatenates_the_pdfs_and_refuses_other_files(node):
    made = await produce(node, "pdfs")
    assert (made.name, made.content_type) == ("all.pdf", "application/pdf")
    assert len(PdfReader(io.BytesIO(made.data)).pages) == 5
    with pytest.raises(errors.BadArguments, match="a.txt is not a PDF"):
        await produce(node, "pdf_and_text")


@pytest_twisted.ensureDeferred
async def test_excel_mode_exports_the_records_through_the_dispatcher(node):
    ids = await node.dispatcher.records(as_role("user"), "things", "apply", {"insert": [
        {"title": "=1+1", "extra": "x\x01y"}, {"title": "second", "doc": "f1"}]}, ENV)
    made = await produce(node, "sheet")
    assert made.name == "thing-sheet.xlsx" and made.content_type == downloads.XLSX
    sheet = load_workbook(io.BytesIO(made.data)).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows == [["Title", "Doc", "Pic", "Extra notes"],
                    ["=1+1", None, None, "xy"], ["second", "f1", None, None]]
    assert sheet["A2"].data_type == "s"  # the user's "=1+1" is text, not a formula
    assert len(ids) == 2


@pytest_twisted.ensureDeferred
async def test_excel_reads_pages_by_id_up_to_its_cap(node, monkeypatch):
    monkeypatch.setattr(downloads, "EXCEL_PAGE", 2)
    monkeypatch.setattr(downloads, "MAX_EXCEL_ROWS", 5)
    await node.dispatcher.records(as_role("user"), "things", "apply", {"insert": [
        {"title": f"t{i}"} for i in range(7)]}, ENV)
    sheet = load_workbook(io.BytesIO((await produce(node, "sheet")).data)).active
    assert [row[0].value for row in sheet.iter_rows(min_row=2)] == [
        "t0", "t1", "t2", "t3", "t4"]


@pytest_twisted.ensureDeferred
async def test_excel_is_refused_without_view_by_the_dispatcher(node):
    with pytest.raises(errors.PermissionDenied):
        await produce(node, "sheet", role="nobody")


@pytest_twisted.ensureDeferred
async def test_thumbnail_mode_renders_a_png_at_most_width_wide_and_caches_it(node, tmp_path,
                                                                            monkeypatch):
    renders, reads = [], []
    real_render, real_read = downloads._thumbnail_bytes, downloads._read_file
    monkeypatch.setattr(downloads, "_thumbnail_bytes",
                        lambda *a: renders.append(a) or real_render(*a))
    monkeypatch.setattr(downloads, "_read_file", lambda *a: reads.append(a) or real_read(*a))
    monkeypatch.setattr(downloads, "THUMBNAILS", downloads.ThumbnailCache())
    made = await produce(node, "thumb")
    assert (made.name, made.content_type) == ("photo-thumbnail.png", "image/png")
    image = Image.open(io.BytesIO(made.data))
    assert image.format == "PNG" and image.size == (100, 50)
    again = await produce(node, "thumb")
    assert again == made and len(renders) == len(reads) == 1  # from the cache, unread
    photo = tmp_path / "files" / "photo.png"
    photo.write_bytes(png_bytes(400, 400))  # changed: rendered again
    assert Image.open(io.BytesIO((await produce(node, "thumb")).data)).size == (100, 100)
    pic = await upload(node, "big.png", png_bytes(300, 900))
    made = await produce(node, "thumb_pic", {"pic": pic})
    assert Image.open(io.BytesIO(made.data)).size == (150, 450)
    assert (await produce(node, "thumb_pic", {"pic": pic})).data == made.data
    assert len(renders) == 3 and len(downloads.THUMBNAILS) == 3
    assert (await produce(node, "thumb_pic", {"pic": pic}, role="things_only")).data == made.data
    private = await upload(node, "p.png", png_bytes(20, 20), item="private")
    await produce(node, "thumb_pic", {"pic": private}, role="user")  # now cached
    with pytest.raises(errors.PermissionDenied):  # view on the file's item, before the cache
        await produce(node, "thumb_pic", {"pic": private}, role="things_only")


def test_the_thumbnail_cache_drops_the_least_recently_used():
    cache = downloads.ThumbnailCache(entries=2, size=10)
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") == b"1"
    cache.put("c", b"3")  # drops b, used least recently
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1", None, b"3")
    cache.put("d", b"x" * 10)  # bytes bound: everything else goes
    assert len(cache) == 1 and cache.get("d") == b"x" * 10
    cache.put("e", b"x" * 11)  # larger than the whole cache: not kept
    assert cache.get("e") is None


@pytest_twisted.ensureDeferred
async def test_a_thumbnail_of_a_non_image_or_a_bomb_is_refused(node, monkeypatch):
    monkeypatch.setattr(downloads, "THUMBNAILS", downloads.ThumbnailCache())
    with pytest.raises(errors.BadArguments, match="a.txt is not an image"):
        await produce(node, "thumb_text")
    noise = io.BytesIO()
    Image.effect_noise((200, 200), 60).save(noise, "PNG")
    pic = await upload(node, "bad.png", noise.getvalue()[:2000])  # cut short
    with pytest.raises(errors.BadArguments, match="bad.png is a damaged image"):
        await produce(node, "thumb_pic", {"pic": pic})
    monkeypatch.setattr(downloads, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(errors.BadArguments, match="too large an image"):
        await produce(node, "thumb")


@pytest_twisted.ensureDeferred
async def test_monitor_answers_the_last_lines_reading_only_the_end(node, tmp_path, monkeypatch):
    big = tmp_path / "logs" / "app.log"
    line = b"x" * 99 + b"\n"
    with open(big, "wb") as f:
        f.write(line * (50 * 1024 * 1024 // 100))
        f.write(b"last but two\nlast but one\nthe last\n")
    assert big.stat().st_size > 50 * 1024 * 1024
    read = []

    class Counting(io.FileIO):
        def read(self, size=-1):
            data = super().read(size)
            read.append(len(data))
            return data

    monkeypatch.setattr(downloads, "open", lambda fd, mode: Counting(fd, "rb"), raising=False)
    made = await produce(node, "log")
    assert (made.name, made.content_type) == ("app.log", "text/plain")
    assert made.data == b"last but two\nlast but one\nthe last\n"
    assert sum(read) <= downloads.TAIL_BLOCK
    answer = await produce(node, "log_json")
    assert answer == {"status": "success", "message": "", "text": "last but one\nthe last\n"}


@pytest_twisted.ensureDeferred
async def test_monitor_of_a_short_log_without_a_final_newline(node, tmp_path):
    (tmp_path / "logs" / "app.log").write_bytes(b"one\ntwo")
    assert (await produce(node, "log")).data == b"one\ntwo"
    (tmp_path / "logs" / "app.log").write_bytes(b"a\nb\nc\r50%\r100%\nd\n")
    assert (await produce(node, "log")).data == b"b\nc\r50%\r100%\nd\n"  # lines end at \n
    (tmp_path / "logs" / "app.log").write_bytes(b"")
    assert (await produce(node, "log")).data == b""


@pytest_twisted.ensureDeferred
async def test_json_output_gives_utf8_text_and_refuses_binary(node):
    doc = await upload(node, "n.txt", "grüße\n".encode())
    assert await produce(node, "doc_text", {"doc": doc}) == {
        "status": "success", "message": "", "text": "grüße\n"}
    assert (await produce(node, "pick_json", params={"path": "a.txt"}))["text"] == "alpha\n"
    for name, why in [("blob.bin", "not text"), ("latin.txt", "not UTF-8 text")]:
        with pytest.raises(errors.BadArguments, match=why):
            await produce(node, "pick_json", params={"path": name})


# -- roots, paths, privileges ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_client_path_is_read_under_its_root_only(node):
    made = await produce(node, "pick", params={"path": "sub/a.txt", "other": "ignored"})
    assert made.data == b"other alpha\n"
    assert (await produce(node, "pick", params={"path": "./one.pdf"})).name == "one.pdf"
    made = await produce(node, "pick", params={"path": "alias.txt"})
    assert (made.name, made.data) == ("alias.txt", b"other alpha\n")


@pytest.mark.parametrize("path", [
    "../outside/secret.txt", "sub/../../outside/secret.txt", "/etc/passwd", "a\x00.txt",
    "sub\\a.txt", "leak.txt", "leakdir/secret.txt", "..", ".", "sub/../a.txt"])
@pytest_twisted.ensureDeferred
async def test_paths_leaving_the_root_are_refused(node, path):
    with pytest.raises(errors.PermissionDenied, match="outside the download root"):
        await produce(node, "pick", params={"path": path})


@pytest_twisted.ensureDeferred
async def test_a_missing_file_or_a_directory_is_not_found(node):
    for path in ["missing.txt", "sub", "pipe"]:
        with pytest.raises(errors.FunctionNotFound):
            await produce(node, "pick", params={"path": path})


@pytest_twisted.ensureDeferred
async def test_the_path_parameter_is_needed_exactly_when_declared(node):
    with pytest.raises(errors.BadArguments, match="needs a path"):
        await produce(node, "pick")
    with pytest.raises(errors.BadArguments, match="needs a path"):
        await produce(node, "pick", params={"path": 7})
    with pytest.raises(errors.BadArguments, match="takes no path"):
        await produce(node, "a_file", params={"path": "a.txt"})


@pytest_twisted.ensureDeferred
async def test_privileges_on_the_forms_item_are_checked_first(node):
    with pytest.raises(errors.PermissionDenied, match="lacks 'view'"):
        await produce(node, "a_file", role="nobody")
    with pytest.raises(errors.PermissionDenied, match="lacks 'edit'"):
        await produce(node, "guarded", role="viewer")
    assert (await produce(node, "guarded", role="user")).data == b"alpha\n"


@pytest_twisted.ensureDeferred
async def test_a_download_past_the_byte_cap_is_refused(node, monkeypatch):
    monkeypatch.setattr(downloads, "MAX_BYTES", 8)
    with pytest.raises(errors.BadArguments, match="too large"):
        await produce(node, "pdfs")
    doc = await upload(node, "long.txt", b"x" * 20)
    with pytest.raises(errors.BadArguments, match="too large"):
        await produce(node, "doc", {"doc": doc})


# -- through the form service (node.forms, what the door calls) ---------------------------


@pytest_twisted.ensureDeferred
async def test_the_form_service_makes_a_download_its_sip_names(node):
    session = await node.login.login("ed", "pw", "test")
    doc = await upload(node, "r.txt", b"report\n")
    [record_id] = await node.dispatcher.records(session, "things", "apply", {"insert": [
        {"title": "t", "doc": doc}]}, ENV)
    page = await node.forms.open_form(session, "thing", record_id)
    sips = page["downloads"]
    made = await node.forms.download(session, sips["doc"], {})
    assert (made.name, made.data) == ("r.txt", b"report\n")
    with pytest.raises(errors.PermissionDenied, match="outside the download root"):
        await node.forms.download(session, sips["pick"], {"path": "../outside/secret.txt"})
    made = await node.forms.download(session, sips["pick"], {"path": "a.txt", "_": "1"})
    assert made.data == b"alpha\n"  # refused input left the node serving

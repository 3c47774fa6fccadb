"""The core's Files service (node.files) in a real node, without a door:
its checks, the size cap counted as the bytes go by, reports' arguments
and file names made harmless."""

import pytest
import pytest_twisted

from hpxd.app import File, Task
from hpxd.core import errors
from hpxd.core.files import capped, extension, safe_content_type, safe_name
from hpxd.core.passwords import hash_password
from tests.support import start_service

CAP = 1000


def make_app():
    task = Task("filesapp")
    docs = task.item("docs")
    docs.uploads(["txt", ".PDF"])
    task.item("plain")

    @docs.report
    def listing(item, first, second="b", *, third="c"):
        return File("list.txt", "text/plain; charset=utf-8", f"{first},{second},{third}".encode())

    @docs.report
    def broken(item):
        return b"not a File"

    @docs.report(requires="edit")
    def secret(item):
        return File("s.txt", "text/plain", b"s")

    return task


@pytest_twisted.async_yield_fixture
async def node(tmp_path):
    raw = {"server": {"data_dir": str(tmp_path / "data"), "shutdown_timeout": 2},
           "tcp": {"listen": []}, "web": {"listen": [], "max_upload_bytes": CAP},
           "users": [{"name": "ed", "password_hash": hash_password("pw", log2_n=10),
                      "role": "user"}]}
    service = await start_service(raw, make_app())
    yield service.node
    await service.stopService()


async def user(node):
    return await node.login.login("ed", "pw", "test")


def test_client_names_become_harmless_metadata():
    assert safe_name("../../x.pdf") == "x.pdf"
    assert safe_name("/etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\a\\b.txt") == "b.txt"
    assert safe_name("a\x00b\n.txt") == "ab.txt"
    assert safe_name("..") == safe_name("") == safe_name(None) == safe_name("/") == "file"
    assert safe_name(".hidden.txt") == "hidden.txt"
    long = safe_name("n" * 400 + ".pdf")
    assert len(long) == 255 and long.endswith(".pdf")
    assert extension("R.PDF") == ".pdf" and extension("README") == ""


def test_content_types_are_kept_only_when_plain():
    assert safe_content_type("Text/CSV; charset=utf-8") == "text/csv"
    for bad in [None, "", "text", "text/", "text/html\r\nX-Evil: 1", "a b/c", "/x"]:
        assert safe_content_type(bad) == "application/octet-stream", bad


def test_capped_fails_once_past_the_limit():
    assert list(capped([b"a" * 5, b"b" * 5], 10)) == [b"a" * 5, b"b" * 5]
    with pytest.raises(errors.ParsingError, match="larger than 10 bytes"):
        list(capped([b"a" * 5, b"b" * 6], 10))


@pytest_twisted.ensureDeferred
async def test_an_upload_past_the_cap_is_refused_and_leaves_nothing(node):
    session = await user(node)
    pieces = (b"x" * 300 for _ in range(4))  # 1200 bytes > CAP
    with pytest.raises(errors.ParsingError, match="max_upload_bytes"):
        await node.files.upload(session, "docs", "a.txt", "text/plain", pieces)
    answer = await node.files.upload(session, "docs", "a.txt", "text/plain", [b"x" * CAP])
    assert answer["size"] == CAP


@pytest_twisted.ensureDeferred
async def test_uploads_check_item_privilege_and_extension_before_reading(node):
    session = await user(node)
    guest = node.login.transient_guest()

    def never():
        raise AssertionError("the source was read")
        yield b""

    cases = [(guest, "docs", "a.txt", errors.PermissionDenied),
             (session, "plain", "a.txt", errors.BadArguments),
             (session, "docs", "a.exe", errors.BadArguments),
             (session, "nowhere", "a.txt", errors.FunctionNotFound),
             (session, 999, "a.txt", errors.FunctionNotFound)]
    for who, item, name, error in cases:
        with pytest.raises(error):
            await node.files.upload(who, item, name, "text/plain", never())
    stored = await node.files.upload(session, "docs", "UP.pdf", "application/pdf", [b"%PDF"])
    assert stored["name"] == "UP.pdf"  # the allow-list ignores case


@pytest_twisted.ensureDeferred
async def test_a_shutting_down_node_takes_no_upload(node):
    session = await user(node)
    await node.dispatcher.drain()
    with pytest.raises(errors.ShuttingDown):
        await node.files.upload(session, "docs", "a.txt", "text/plain", [b"x"])


@pytest_twisted.ensureDeferred
async def test_report_arguments_by_keyword_or_position(node):
    session = await user(node)

    async def text(kwargs):
        file_id = await node.files.print_report(session, "docs", "listing", kwargs)
        reader = await node.files.download(session, file_id)
        assert reader.content_type == "text/plain"  # parameters dropped
        try:
            return await reader.read()
        finally:
            await reader.close()

    assert await text({"first": 1}) == b"1,b,c"
    assert await text([1, 2]) == b"1,2,c"
    assert await text({"*args": [1], "third": 3}) == b"1,b,3"
    for bad in [[1, 2, 3], {"nope": 1}, [], {"*args": "x"}]:
        with pytest.raises(errors.BadArguments):
            await node.files.print_report(session, "docs", "listing", bad)


@pytest_twisted.ensureDeferred
async def test_report_failures_are_the_dispatchers(node):
    session = await user(node)
    guest = node.login.transient_guest()
    with pytest.raises(errors.FunctionNotFound):
        await node.files.print_report(session, "docs", "nope", {})
    with pytest.raises(errors.UnhandledError):
        await node.files.print_report(session, "docs", "broken", {})
    with pytest.raises(errors.PermissionDenied):
        await node.files.print_report(guest, "docs", "secret", [])
    assert guest.transient  # refused: nothing stored for it

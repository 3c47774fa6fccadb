"""POST /upload and GET /download/<id> on real hpxd nodes (twistd, the demo
app): the size cap while the body arrives, with the node's memory bounded;
the extension allow-list; client names as metadata only; privileges; the
Origin check; a report's file downloads once, for its session; and two
nodes on one PostgreSQL share files and records."""

import hashlib
import http.client
import json
import os
import socket
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import pytest_twisted

from hpxd.core.passwords import hash_password
from tests.support import RawClient, start_service

PASSWORD = "s3cret-files"
ORIGIN = "http://app.example:8080"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def user_hash():
    return hash_password(PASSWORD, log2_n=10)


def node_config(user_hash, extra=""):
    """The demo app; ed may do anything, bo may only view the catalog (not
    the documents), guests may view everything."""
    return f'''
[tcp]
listen = ["tcp:0:interface=127.0.0.1"]
[web]
listen = ["tcp:0:interface=127.0.0.1"]
allowed_origins = ["{ORIGIN}"]
[auth]
failed_login_delay = 0.05
[roles.guest]
privileges = {{ "*" = ["view"] }}
[roles.user]
privileges = {{ "*" = ["view", "create", "edit", "delete"] }}
[roles.blind]
privileges = {{ "catalog" = ["view"] }}
[[users]]
name = "ed"
password_hash = "{user_hash}"
role = "user"
[[users]]
name = "bo"
password_hash = "{user_hash}"
role = "blind"
''' + extra


@pytest.fixture
def node(daemons, user_hash):
    return daemons(node_config(user_hash))


# -- a blocking HTTP client ---------------------------------------------------------

def request(port, method, path, body=None, headers=None):
    """``(status, headers (lower-case names), body bytes)``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        connection.close()


def login(port, user):
    status, headers, body = request(port, "POST", "/session",
                                    json.dumps({"user": user, "password": PASSWORD}),
                                    {"content-type": "application/json"})
    assert status == 200, body
    return headers["set-cookie"].split(";")[0]  # "hpxd_session=..."


def multipart(parts):
    """A multipart/form-data body of ``parts`` ``(name, value, filename,
    content_type)`` (filename None: a plain field); ``(content type, body)``."""
    boundary = uuid.uuid4().hex
    out = b""
    for name, value, filename, content_type in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + (value if isinstance(value, bytes) else value.encode()) + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", out


def upload(port, cookie, filename, data, item="documents", content_type="application/pdf",
           origin=None):
    """``(status, JSON answer)`` of an upload of ``data`` named ``filename``."""
    kind, body = multipart([("item", item, None, None),
                            ("file", data, filename, content_type)])
    headers = {"content-type": kind}
    if cookie:
        headers["cookie"] = cookie
    if origin:
        headers["origin"] = origin
    status, _, answer = request(port, "POST", "/upload", body, headers)
    return status, json.loads(answer)


def download(port, cookie, file_id):
    return request(port, "GET", f"/download/{file_id}", headers={"cookie": cookie} if cookie
                   else {})


def stored_files(node):
    """How many files the node's SQLite database holds (any state)."""
    path = node.dir / "hpxd-data" / "hpxd.sqlite3"
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM hpxd_files").fetchone()[0], \
            db.execute("SELECT count(*) FROM hpxd_file_chunks").fetchone()[0]


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


# -- uploads and downloads -----------------------------------------------------------

def test_an_upload_downloads_whole_under_its_name_and_type(node):
    cookie = login(node.web_port, "ed")
    data = os.urandom(3 * MiB + 17)  # several chunks, the last one short
    status, answer = upload(node.web_port, cookie, "Report 2024.PDF", data)
    assert status == 200, answer
    assert answer["name"] == "Report 2024.PDF" and answer["size"] == len(data)
    assert answer["content_type"] == "application/pdf" and len(answer["id"]) == 43
    status, headers, body = download(node.web_port, cookie, answer["id"])
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert headers["content-type"] == "application/pdf"
    assert headers["content-length"] == str(len(data))
    assert headers["content-disposition"] == (
        "attachment; filename=\"Report 2024.PDF\"; filename*=UTF-8''Report%202024.PDF")
    assert headers["x-content-type-options"] == "nosniff"
    assert "content-encoding" not in headers  # sent as stored, even to a gzip client


def test_the_item_may_be_named_by_id_or_in_the_query_string(node):
    cookie = login(node.web_port, "ed")
    assert upload(node.web_port, cookie, "a.txt", b"by id", item="3")[0] == 200  # documents
    kind, body = multipart([("file", b"by query", "b.txt", "text/plain")])
    status, _, answer = request(node.web_port, "POST", "/upload?item=documents", body,
                                {"content-type": kind, "cookie": cookie})
    assert status == 200 and json.loads(answer)["size"] == len(b"by query")


def test_dot_dot_and_absolute_names_are_only_metadata(node):
    cookie = login(node.web_port, "ed")
    before = sorted(p.name for p in node.dir.rglob("*"))
    status, answer = upload(node.web_port, cookie, "../x.pdf", b"%PDF-1.4 dots")
    assert status == 200 and answer["name"] == "x.pdf"
    status, second = upload(node.web_port, cookie, "/etc/passwd.txt", b"not the passwd file",
                            content_type="text/plain")
    assert status == 200 and second["name"] == "passwd.txt"
    status, third = upload(node.web_port, cookie, "C:\\Users\\..\\..\\evil.txt", b"windows")
    assert status == 200 and third["name"] == "evil.txt"
    # /etc/passwd itself has no allowed extension: refused, nothing read or written
    status, refused = upload(node.web_port, cookie, "/etc/passwd", b"root:x:0:0")
    assert status == 400 and refused["code"] == 413 and "'passwd'" in refused["error"]
    # the names made no file anywhere: every byte is in the database
    assert sorted(p.name for p in node.dir.rglob("*")) == before
    assert not (node.dir.parent / "x.pdf").exists()
    _, headers, body = download(node.web_port, cookie, second["id"])
    assert body == b"not the passwd file"
    assert 'filename="passwd.txt"' in headers["content-disposition"]


def test_a_bad_extension_is_refused_and_nothing_is_stored(node):
    cookie = login(node.web_port, "ed")
    for name in ["x.exe", "x.pdf.exe", "noextension", ".pdf", "x.pdf\x00.exe"]:
        status, answer = upload(node.web_port, cookie, name, b"MZ")
        assert status == 400 and answer["code"] == 413, (name, answer)
        assert ".pdf" in answer["error"]
    # an item that takes no uploads at all
    status, answer = upload(node.web_port, cookie, "x.pdf", b"%PDF", item="catalog")
    assert status == 400 and "takes no uploads" in answer["error"]
    assert stored_files(node) == (0, 0)


def test_bad_multipart_bodies_get_clear_errors_and_the_node_lives(node):
    cookie = login(node.web_port, "ed")
    port = node.web_port

    def post(body, kind):
        status, _, answer = request(port, "POST", "/upload", body,
                                    {"content-type": kind, "cookie": cookie})
        return status, json.loads(answer)

    kind, body = multipart([("item", "documents", None, None)])
    status, answer = post(body, kind)
    assert (status, answer["code"]) == (400, 413) and "no field named 'file'" in answer["error"]
    status, answer = post(b'{"file": "x"}', "application/json")
    assert (status, answer["code"]) == (400, 413) and "multipart/form-data" in answer["error"]
    status, answer = post(b"", "multipart/form-data")
    assert (status, answer["code"]) == (400, 410) and "boundary" in answer["error"]
    kind, body = multipart([("item", "documents", None, None),
                            ("file", b"x" * 5000, "cut.pdf", "application/pdf")])
    status, answer = post(body[:3000], kind)  # the body breaks off inside the file
    assert (status, answer["code"]) == (400, 410) and "malformed" in answer["error"]
    kind, body = multipart([("file", b"%PDF", "x.pdf", "application/pdf")])
    status, answer = post(body, kind)
    assert status == 400 and "name the item" in answer["error"]
    status, answer = post(b"x", "multipart/form-data; boundary=" + "b" * 300)
    assert (status, answer["code"]) == (400, 410)
    status, _, answer = request(port, "GET", "/upload")
    assert status == 405
    assert stored_files(node) == (0, 0)
    assert node.proc.poll() is None
    assert upload(port, cookie, "after.pdf", b"%PDF")[0] == 200
    assert "Traceback" not in node.log()


def send_chunked(port, head, total, piece=MiB):
    """Send a chunked body of ``total`` bytes after ``head`` until the server
    stops reading; the bytes it answered, and how many bytes were sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = 0
    try:
        sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % piece + b"a" * piece + b"\r\n"
        try:
            while sent < total:
                sock.sendall(chunk)
                sent += piece
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed: the rest is not read
            pass
        sock.settimeout(10)
        answer = b""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except OSError:
            pass
        return answer, sent
    finally:
        sock.close()


def test_too_big_is_refused_while_sending_100_mib_with_the_nodes_memory_bounded(node):
    cookie = login(node.web_port, "ed")
    pid = node.proc.pid
    rss_before = status_kib(pid, "VmRSS")
    head = (b"POST /upload?item=documents HTTP/1.1\r\nHost: x\r\nCookie: " + cookie.encode()
            + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n")
    # 1. a declared 100 MiB: refused at once, before a byte of it
    declared = socket.create_connection(("127.0.0.1", node.web_port), timeout=10)
    try:
        declared.sendall(head + b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (100 * MiB))
        reply = declared.recv(65536)
        assert reply.startswith(b"HTTP/1.1 400 ") and b"max_upload_bytes" in reply
    finally:
        declared.close()
    # 2. 100 MiB chunked (no length said): refused once it passes the cap
    answer, sent = send_chunked(node.web_port, head, 100 * MiB)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"max_upload_bytes" in answer
    assert b'"code": 410' in answer
    peak = status_kib(pid, "VmHWM")  # the most the node ever held
    assert peak - rss_before < 24 * 1024, (rss_before, peak)
    assert stored_files(node) == (0, 0)
    assert node.proc.poll() is None
    assert upload(node.web_port, cookie, "small.pdf", b"%PDF")[0] == 200


def test_a_48_mib_upload_streams_through_with_the_nodes_memory_bounded(node):
    cookie = login(node.web_port, "ed")
    pid = node.proc.pid
    rss_before = status_kib(pid, "VmRSS")
    data = os.urandom(MiB) * 48
    status, answer = upload(node.web_port, cookie, "big.pdf", data)
    assert status == 200 and answer["size"] == len(data), answer
    status, _, body = download(node.web_port, cookie, answer["id"])
    assert status == 200 and body == data
    peak = status_kib(pid, "VmHWM")
    assert peak - rss_before < 24 * 1024, (rss_before, peak)  # never the file whole


def test_download_needs_view_and_upload_needs_edit(node):
    ed = login(node.web_port, "ed")
    bo = login(node.web_port, "bo")  # may view the catalog, not the documents
    status, answer = upload(node.web_port, ed, "plan.pdf", b"%PDF plan")
    assert status == 200
    status, _, body = download(node.web_port, bo, answer["id"])
    assert status == 403 and json.loads(body)["code"] == 406
    assert "'view'" in json.loads(body)["error"]
    status, refused = upload(node.web_port, bo, "mine.pdf", b"%PDF")
    assert status == 403 and refused["code"] == 406 and "'edit'" in refused["error"]
    status, refused = upload(node.web_port, None, "guest.pdf", b"%PDF")  # guests: view only
    assert status == 403 and refused["code"] == 406
    status, _, body = download(node.web_port, None, answer["id"])  # guests may view
    assert status == 200 and body == b"%PDF plan"
    status, _, body = download(node.web_port, ed, "x" * 43)
    assert status == 404 and json.loads(body)["code"] == 404


def test_a_post_with_a_foreign_origin_is_refused_on_upload(node):
    cookie = login(node.web_port, "ed")
    status, answer = upload(node.web_port, cookie, "x.pdf", b"%PDF",
                            origin="http://evil.example")
    assert status == 403 and answer["code"] == 406 and "allowed_origins" in answer["error"]
    assert stored_files(node) == (0, 0)
    status, answer = upload(node.web_port, cookie, "x.pdf", b"%PDF", origin=ORIGIN)
    assert status == 200


# -- reports: one download, by the session that asked ----------------------------------

@pytest_twisted.async_yield_fixture
async def service(tmp_path, user_hash):
    from hpxd.demo import task
    raw = {"server": {"data_dir": str(tmp_path / "data"), "shutdown_timeout": 2},
           "tcp": {"listen": ["tcp:0:interface=127.0.0.1"]},
           "web": {"listen": ["tcp:0:interface=127.0.0.1"]},
           "auth": {"failed_login_delay": 0.05},
           "users": [{"name": "ed", "password_hash": user_hash, "role": "user"}]}
    svc = await start_service(raw, task)
    svc.web_port = [a.port for d in svc.doors if d.name == "web" for a in d.addresses()][0]
    yield svc
    await svc.stopService()


async def in_thread(fn, *args):
    from twisted.internet import threads
    return await threads.deferToThread(fn, *args)


@pytest_twisted.ensureDeferred
async def test_a_report_downloads_once_for_its_session_only(service):
    node = service.node
    port = service.web_port
    first, second = [await in_thread(login, port, "ed") for _ in range(2)]  # two sessions
    session = await node.sessions.get(first.split("=", 1)[1])
    await node.dispatcher.call(session, "catalog.add", kwargs={"name": "pen", "price": 1.5})
    file_id = await node.files.print_report(session, "catalog", "price_list", {"limit": 10},
                                            {"door": "test"})
    status, _, body = await in_thread(download, port, second, file_id)  # ed, another session
    assert status == 403 and "another session" in json.loads(body)["error"]
    status, headers, body = await in_thread(download, port, None, file_id)
    assert status == 403
    status, headers, body = await in_thread(download, port, first, file_id)
    assert status == 200 and body == b"name,price\r\npen,1.5\r\n"
    assert headers["content-type"] == "text/csv"
    assert 'filename="price-list.csv"' in headers["content-disposition"]
    status, _, body = await in_thread(download, port, first, file_id)  # a second fetch
    assert status == 404 and "downloads once" in json.loads(body)["error"]


@pytest_twisted.ensureDeferred
async def test_report_parameters_may_be_positional_and_a_guest_gets_a_session(service):
    node = service.node
    guest = node.login.transient_guest()
    file_id = await node.files.print_report(guest, "catalog", "price_list", [0], None)
    assert not guest.transient  # stored: the door's keep_session sets its cookie
    reader = await node.files.download(guest, file_id)
    assert await reader.read() == b"name,price\r\n"
    await reader.close()


# -- two nodes, one PostgreSQL ---------------------------------------------------------

@pytest.fixture
def two_nodes(postgres_url, redis_server, daemons, user_hash):  # daemons stop first
    config = node_config(user_hash, f'[database]\nurl = "{postgres_url}"\n'
                         f'[backend]\nkind = "redis"\nredis_url = "{redis_server.url}"\n')
    with ThreadPoolExecutor(2) as pool:  # both make the tables at once
        a, b = pool.map(lambda name: daemons(config, name=name), ["a", "b"])
    return a, b


def test_a_file_uploaded_on_a_downloads_on_b_and_a_record_made_on_a_opens_on_b(two_nodes):
    a, b = two_nodes
    cookie = login(a.web_port, "ed")  # the session is the cluster's: it works on B
    data = os.urandom(2 * MiB + 5)
    status, answer = upload(a.web_port, cookie, "shared.pdf", data)
    assert status == 200
    status, headers, body = download(b.web_port, cookie, answer["id"])
    assert status == 200 and body == data and 'filename="shared.pdf"' in \
        headers["content-disposition"]
    on_a = RawClient(a.tcp_port)
    on_b = RawClient(b.tcp_port)
    try:
        for client in (on_a, on_b):
            client.recv()  # greeting
        session_a = on_a.call({"user": "ed", "password": PASSWORD})["session"]
        session_b = on_b.call({"user": "ed", "password": PASSWORD})["session"]
        added = on_a.call([{"fname": "catalog.add", "name": "pen", "price": 1.5}],
                          session=session_a)["data"][0]["data"]
        opened = on_b.call([{"fname": "catalog.list", "filters": [["name", "eq", "pen"]]}],
                           session=session_b)["data"][0]["data"]
        assert opened == [{"id": added, "name": "pen", "price": 1.5}]
    finally:
        on_a.close()
        on_b.close()

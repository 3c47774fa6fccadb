"""A web request body past [web] max_body_bytes is never stored: it is
answered with a 410 (HTTP 400) as soon as it is known to be too large (at
once for a declared Content-Length), and the connection closes. A body that
does not arrive whole within the site's body timeout is answered the same
way: neither can hold a connection open."""

import json

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import resource, server

from hpxd.doors.web import (BODY_TIMEOUT, UPLOAD_MIN_RATE, PathTree, WebSite,
                            close_after_answer, end_body_now, request_line, take_body)

LIMIT = 1000
UPLOAD_LIMIT = 50 * LIMIT  # [web] max_upload_bytes of these tests: /upload's cap
PEER = IPv4Address("TCP", "10.0.0.1", 5555)


class Echo(resource.Resource):
    """POST /echo answers with the body it got."""

    isLeaf = True

    def render_POST(self, request):
        return request.content.read()


class UploadEcho(resource.Resource):
    """POST /upload answers with the upload body it was handed."""

    isLeaf = True
    takes_uploads = True

    def render_POST(self, request):
        request.form_body.seek(0)
        return request.form_body.read()


class Site(WebSite):
    """The web door's site, noting each request it handles and how many
    bytes of its body it held then (twisted.web lets go of it later)."""

    def __init__(self):
        root = PathTree()
        root.putChild(b"echo", Echo())
        root.putChild(b"upload", UploadEcho())
        super().__init__(root, Clock(), max_body_bytes=LIMIT, max_upload_bytes=UPLOAD_LIMIT,
                         upload_segments={b"upload"})
        self.handled = []

    def getResourceFor(self, request):
        self.handled.append((request, stored(request)))
        return super().getResourceFor(request)


def connect(site=None):
    """A connection to ``site`` (a new ``Site``): (site, channel, transport)."""
    site = site or Site()
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 7008))
    transport = StringTransport(peerAddress=PEER)
    channel.makeConnection(transport)
    return site, channel, transport


def post(body, chunked=False, path=b"/echo"):
    site, channel, transport = connect()
    head = b"POST " + path + b" HTTP/1.1\r\nHost: hpxd\r\n"
    if chunked:
        # In pieces of 100 bytes, as a client streaming a body of unknown size.
        pieces = [body[i:i + 100] for i in range(0, len(body), 100)]
        data = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        channel.dataReceived(head + b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(data), 4096):
            channel.dataReceived(data[i:i + 4096])
    else:
        channel.dataReceived(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    site.reactor.advance(0)
    [handled] = site.handled
    return handled, transport


def stored(request):
    position = request.content.tell()
    request.content.seek(0, 2)
    size = request.content.tell()
    request.content.seek(position)
    return size


def answer(transport):
    head, _, body = transport.value().partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_within_the_cap_reaches_the_resource(chunked):
    body = b"x" * LIMIT
    (request, kept), transport = post(body, chunked)
    assert kept == LIMIT
    head, answered = answer(transport)
    assert head[0] == b"HTTP/1.1 200 OK"
    assert body in answered
    assert not transport.disconnecting


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_past_the_cap_is_dropped_and_refused(chunked):
    (request, kept), transport = post(b"x" * 50 * LIMIT, chunked)
    assert request.refusal.code == 410
    assert kept == 0  # nothing of it kept, in memory or in a file
    head, body = answer(transport)
    assert head[0] == b"HTTP/1.1 400 Bad Request"
    assert b"Connection: close" in head
    assert json.loads(body) == {"code": 410, "error": f"request body larger than {LIMIT} "
                                                      "bytes ([web] max_body_bytes)"}
    assert transport.disconnecting


def test_any_path_refuses_a_body_past_the_cap():
    _, transport = post(b"x" * (LIMIT + 1), path=b"/no/such/path")
    head, body = answer(transport)
    assert json.loads(body)["code"] == 410


def headers(length=None, *extra, path=b"/echo"):
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: hpxd", *extra]
    if length is not None:
        lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def refusal(transport):
    """The JSON body of the 400 written to ``transport``."""
    head, body = answer(transport)
    assert head[0] == b"HTTP/1.1 400 Bad Request", transport.value()
    assert b"Connection: close" in head
    return json.loads(body)


# -- answered at once: no body is waited for once it is known to be too large ----

def test_a_declared_length_past_the_cap_is_answered_before_any_body_is_sent():
    site, channel, transport = connect()
    channel.dataReceived(headers(50 * LIMIT))
    site.reactor.advance(0)
    assert refusal(transport) == {"code": 410, "error": f"request body larger than {LIMIT} "
                                                        "bytes ([web] max_body_bytes)"}
    assert transport.disconnecting


def test_expect_100_continue_past_the_cap_gets_the_refusal_and_no_100():
    site, channel, transport = connect()
    channel.dataReceived(headers(50 * LIMIT, b"Expect: 100-continue"))
    site.reactor.advance(0)
    assert not transport.value().startswith(b"HTTP/1.1 100")
    assert refusal(transport)["code"] == 410
    assert transport.disconnecting


def test_a_chunked_body_is_answered_as_soon_as_it_passes_the_cap():
    site, channel, transport = connect()
    channel.dataReceived(headers(None, b"Transfer-Encoding: chunked"))
    piece = b"x" * 100
    for _ in range(LIMIT // 100 + 1):  # one piece past the cap; no last chunk
        channel.dataReceived(b"%x\r\n%s\r\n" % (len(piece), piece))
    site.reactor.advance(0)
    assert refusal(transport)["code"] == 410
    assert transport.disconnecting
    [(request, kept)] = site.handled
    assert kept == 0


def test_the_rest_of_a_refused_body_is_never_read_as_a_request():
    site, channel, transport = connect()
    channel.dataReceived(headers(50 * LIMIT))
    site.reactor.advance(0)
    channel.dataReceived(b"GET /echo HTTP/1.1\r\nHost: hpxd\r\n\r\n")
    assert len(site.handled) == 1
    assert transport.value().count(b"HTTP/1.1 ") == 1


# -- a body that does not arrive in time --------------------------------------------

def test_a_body_that_does_not_arrive_within_the_body_timeout_is_answered():
    site, channel, transport = connect()
    channel.dataReceived(headers(500) + b"x" * 100)
    site.reactor.advance(BODY_TIMEOUT - 0.5)
    assert transport.value() == b""
    site.reactor.advance(0.5)
    assert refusal(transport) == {"code": 410, "error": "request body not received within "
                                                        f"{BODY_TIMEOUT} s (100 of 500 bytes)"}
    assert transport.disconnecting


def test_a_body_that_trickles_in_is_cut_at_the_body_timeout_too():
    """The idle timeout restarts with every byte; the body timeout does not."""
    site, channel, transport = connect()
    channel.dataReceived(headers(500))
    for _ in range(BODY_TIMEOUT):
        channel.dataReceived(b"x")
        site.reactor.advance(1)
    assert refusal(transport)["error"].startswith("request body not received within")
    assert transport.disconnecting


def test_a_chunked_body_without_its_last_chunk_is_cut_at_the_body_timeout():
    site, channel, transport = connect()
    channel.dataReceived(headers(None, b"Transfer-Encoding: chunked") + b"3\r\nabc\r\n")
    site.reactor.advance(BODY_TIMEOUT)
    assert refusal(transport)["error"] == (f"request body not received within {BODY_TIMEOUT} s "
                                           "(3 bytes, chunked)")
    assert transport.disconnecting


def test_a_body_that_arrives_in_time_is_served_and_the_connection_kept():
    site, channel, transport = connect()
    channel.dataReceived(headers(500) + b"x" * 250)
    site.reactor.advance(BODY_TIMEOUT - 1)
    channel.dataReceived(b"y" * 250)
    site.reactor.advance(BODY_TIMEOUT)  # the deadline was for that body only
    head, body = answer(transport)
    assert head[0] == b"HTTP/1.1 200 OK"
    assert body.endswith(b"x" * 250 + b"y" * 250)
    assert not transport.disconnecting


def test_a_client_that_hangs_up_mid_body_leaves_nothing_behind():
    site, channel, transport = connect()
    channel.dataReceived(headers(500) + b"x" * 100)
    channel.connectionLost(ConnectionDone())
    assert [call for call in site.reactor.getDelayedCalls() if call.active()] == []


def test_a_client_that_hangs_up_before_the_refusal_leaves_nothing_behind():
    site, channel, transport = connect()
    channel.dataReceived(headers(50 * LIMIT))
    channel.connectionLost(ConnectionDone())
    assert [call for call in site.reactor.getDelayedCalls() if call.active()] == []
    assert site.handled == []


# -- the adapter over twisted.web's HTTPChannel ---------------------------------------

def test_the_http_channel_adapter_answers_with_what_arrived_and_reads_no_other_request():
    """close_after_answer and end_body_now use two undocumented names of
    Twisted's HTTPChannel (there is no public way to end a body early):
    this fails when a Twisted release changes them."""
    site, channel, transport = connect()
    channel.dataReceived(headers(500) + b"x" * 100)
    close_after_answer(channel)
    end_body_now(channel)
    [(request, kept)] = site.handled
    assert kept == 100
    head, body = answer(transport)
    assert head[0] == b"HTTP/1.1 200 OK" and body.endswith(b"x" * 100)
    assert transport.disconnecting
    channel.dataReceived(b"x" * 400 + b"GET /echo HTTP/1.1\r\nHost: hpxd\r\n\r\n")
    assert len(site.handled) == 1


# -- /upload: a bigger cap for one path ----------------------------------------------

@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("path", [b"/upload", b"/upload/", b"/%75pload?item=3"])
def test_an_upload_path_takes_a_body_up_to_max_upload_bytes(chunked, path):
    body = b"x" * UPLOAD_LIMIT
    (request, kept), transport = post(body, chunked, path=path)
    assert request.refusal is None and request.body_cap == UPLOAD_LIMIT
    head, answered = answer(transport)
    assert head[0] == b"HTTP/1.1 200 OK" and answered.endswith(body)


@pytest.mark.parametrize("chunked", [False, True])
def test_an_upload_past_max_upload_bytes_is_refused_naming_that_cap(chunked):
    (request, kept), transport = post(b"x" * (UPLOAD_LIMIT + 1), chunked, path=b"/upload")
    assert kept == 0
    assert refusal(transport) == {"code": 410, "error": f"request body larger than "
                                  f"{UPLOAD_LIMIT} bytes ([web] max_upload_bytes)"}


def test_other_paths_keep_the_sites_cap_and_an_upload_has_longer_to_arrive():
    for path in [b"/echo", b"/uploads", b"/x/upload"]:
        _, transport = post(b"x" * (LIMIT + 1), path=path)
        assert json.loads(answer(transport)[1])["code"] == 410, path
    site, channel, transport = connect()
    declared = UPLOAD_MIN_RATE * (BODY_TIMEOUT + 10)  # more than BODY_TIMEOUT at that rate
    site.max_upload_bytes = declared
    channel.dataReceived(headers(declared, path=b"/upload") + b"x" * 100)
    site.reactor.advance(BODY_TIMEOUT + 9)
    assert transport.value() == b""
    site.reactor.advance(1)
    assert refusal(transport)["error"] == (f"request body not received within "
                                           f"{BODY_TIMEOUT + 10} s (100 of {declared} bytes)")


def test_the_http_channel_adapter_knows_the_path_while_the_request_is_built():
    """request_line relies on HTTPChannel building each request while it
    handles that request's line: this fails when a Twisted release
    changes that."""
    site, channel, transport = connect()
    seen = []
    original = channel.requestFactory

    def built(*args, **kwargs):
        seen.append(request_line(channel))
        return original(*args, **kwargs)

    channel.requestFactory = built
    channel.dataReceived(b"POST /upload?item=3 HTTP/1.1\r\nHost: hpxd\r\nContent-Length: 0\r\n\r\n")
    assert seen == [b"/upload?item=3"]
    assert request_line(channel) is None  # only while a line is in hand


def test_the_http_channel_adapter_keeps_twisted_from_parsing_an_upload_form():
    """take_body relies on Request.requestReceived parsing a form body out
    of ``content`` only: this fails when a Twisted release changes that
    (a 64 MiB upload would be parsed whole, in memory, into request.args)."""
    boundary = b"b0undary"
    form = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"file\"; "
            b"filename=\"a.txt\"\r\n\r\nhello\r\n--" + boundary + b"--\r\n")
    site, channel, transport = connect()
    channel.dataReceived(b"POST /upload?item=3 HTTP/1.1\r\nHost: hpxd\r\n"
                         b"Content-Type: multipart/form-data; boundary=" + boundary +
                         b"\r\nContent-Length: %d\r\n\r\n" % len(form) + form)
    [(request, _)] = site.handled
    assert request.args == {b"item": [b"3"]}  # the query string's only: no form parsed
    assert answer(transport)[1] == form  # the whole body, handed over as form_body
    # and, with the same body left in ``content`` (twisted.web's own
    # Request, without the take-over), Twisted would have parsed it:
    site, channel, transport = connect()
    channel.requestFactory = server.Request
    channel.dataReceived(b"POST /echo HTTP/1.1\r\nHost: hpxd\r\n"
                         b"Content-Type: multipart/form-data; boundary=" + boundary +
                         b"\r\nContent-Length: %d\r\n\r\n" % len(form) + form)
    [(request, _)] = site.handled
    assert request.args == {b"file": [b"hello"]}


def test_any_multipart_body_is_kept_from_twisted_and_handed_over():
    """Not only an upload's: twisted.web would parse any multipart body in
    memory, and answer a malformed one with a bare 400 of its own."""
    site, channel, transport = connect()
    channel.dataReceived(b"POST /echo HTTP/1.1\r\nHost: hpxd\r\n"
                         b"Content-Type: multipart/form-data; boundary=b0\r\n"
                         b"Content-Length: 11\r\n\r\nnot a form!")
    [(request, _)] = site.handled
    assert request.args == {}
    request.form_body.seek(0)
    assert request.form_body.read() == b"not a form!"
    assert answer(transport)[0][0] == b"HTTP/1.1 200 OK"  # no 400 of twisted.web's


def test_take_body_leaves_an_empty_content():
    class Holder:
        content = None
    holder = Holder()
    holder.content = original = __import__("io").BytesIO(b"body")
    assert take_body(holder) is original and holder.content.read() == b""


def test_an_upload_path_covers_itself_and_below_it_only():
    from hpxd.doors.web import takes_upload
    paths = {b"upload", b"forms/api/file"}
    assert takes_upload(b"/upload", paths) and takes_upload(b"/upload?item=3", paths)
    assert takes_upload(b"/forms/api/file?action=upload", paths)
    assert takes_upload(b"/forms/api/%66ile", paths)  # unquoted as twisted.web does
    assert not takes_upload(b"/forms/api/file.php.x", paths)
    assert not takes_upload(b"/forms/api/load", paths) and not takes_upload(b"/uploads", paths)
    assert not takes_upload(None, paths) and not takes_upload(b"/forms", paths)

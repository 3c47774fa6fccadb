"""A web request body past [web] max_body_bytes is never stored: it is read
and dropped, and the answer is a 410 (HTTP 400) before the connection closes."""

import json

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import resource

from hpxd.doors.web import PathTree, WebSite

LIMIT = 1000


class Echo(resource.Resource):
    """POST /echo answers with the body it got."""

    isLeaf = True

    def render_POST(self, request):
        return request.content.read()


class Site(WebSite):
    """The web door's site, noting each request it handles and how many
    bytes of its body it held then (twisted.web lets go of it later)."""

    def __init__(self):
        root = PathTree()
        root.putChild(b"echo", Echo())
        super().__init__(root, Clock(), max_body_bytes=LIMIT)
        self.handled = []

    def getResourceFor(self, request):
        self.handled.append((request, stored(request)))
        return super().getResourceFor(request)


def post(body, chunked=False, path=b"/echo"):
    site = Site()
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 7008))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 5555))
    channel.makeConnection(transport)
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
    assert request.body_too_large
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

"""A burst of connections to a real daemon's TCP door: every one is greeted
at once (issue 12 A4). With Twisted's default listen backlog of 50 the
accept queue overflows, the kernel drops SYNs, and the clients behind them
wait for their SYN retransmits (1 s, 3 s, 7 s, ...)."""

import gzip
import json
import resource
import selectors
import socket
import time

import pytest

from tests.support import EOF_MARK, tcp_config

CONNECTIONS = 1500
SECONDS = 5.0
# The test's sockets, the daemon's as many again, and some to spare.
FILES_NEEDED = 3200


@pytest.fixture
def enough_files():
    """Raise the open-file limit (inherited by the daemon) for the test only."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FILES_NEEDED:
        pytest.skip(f"needs {FILES_NEEDED} open files; the hard limit (ulimit -Hn) is {hard}")
    if soft != resource.RLIM_INFINITY and soft < FILES_NEEDED:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FILES_NEEDED, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def is_greeting(buffer):
    """One gzip JSON frame ending with <EOF>, carrying the version."""
    if not buffer.endswith(EOF_MARK) or buffer.count(EOF_MARK) != 1:
        return False
    return "version" in json.loads(gzip.decompress(buffer[:-len(EOF_MARK)]))["data"]


def greet_burst(port, count, seconds):
    """Open ``count`` connections at once; return how many were greeted
    within ``seconds`` and the seconds until the last of those."""
    selector = selectors.DefaultSelector()
    sockets, greeted, last = [], 0, 0.0
    start = time.monotonic()
    try:
        for _ in range(count):
            sock = socket.socket()
            sockets.append(sock)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))  # EINPROGRESS: the burst goes out at once
            selector.register(sock, selectors.EVENT_READ, bytearray())
        while selector.get_map() and (left := start + seconds - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                if _read(selector, key):
                    greeted += is_greeting(bytes(key.data))
                    last = time.monotonic() - start
        return greeted, last
    finally:
        selector.close()
        for sock in sockets:  # greeted ones were kept open until now
            sock.close()


def _read(selector, key):
    """Read what arrived; True once this connection is done (frame or close)."""
    try:
        chunk = key.fileobj.recv(65536)
    except BlockingIOError:
        return False
    except OSError:  # refused or reset: done, not greeted
        chunk = b""
    key.data.extend(chunk)
    if chunk and EOF_MARK not in key.data:
        return False
    selector.unregister(key.fileobj)
    return True


def test_burst_of_connections_is_greeted(enough_files, daemons):
    daemon = daemons(tcp_config())
    greeted, took = greet_burst(daemon.tcp_port, CONNECTIONS, SECONDS)
    assert greeted == CONNECTIONS, (
        f"{CONNECTIONS - greeted} of {CONNECTIONS} connections not greeted within {SECONDS} s")
    assert daemon.proc.poll() is None, daemon.log()
    print(f"{CONNECTIONS} connections greeted in {took:.2f} s")

"""A blocking HTTP client for tests against a real daemon's web door, and
the config such a daemon runs with (tests/test_ajax.py, tests/test_ext.py)."""

import gzip
import http.client
import json
from urllib.parse import quote

from hpxd.core.passwords import hash_password
from tests.support import free_port, tcp_config

JSON_TYPE = "application/json; charset=utf-8"
USER, PASSWORD = "alice", "alice-http-pw"
TOKEN = "ext-token-0123456789abcdef"
OTHER_TOKEN = "ext-token-fedcba9876543210"


def web_config(app, extra_web="", extra=""):
    """A config for ``app`` with the web door on a port chosen now, whose
    own origin is allowed; one user, ``USER``; ``extra``: more sections."""
    port = free_port()
    users = [(USER, hash_password(PASSWORD, log2_n=10), "user")]
    web = (f'[web]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
           f'allowed_origins = ["http://127.0.0.1:{port}"]\n'
           f'ext_tokens = ["{OTHER_TOKEN}", "{TOKEN}"]\n{extra_web}')
    text = tcp_config(f'[app]\nmodule = "{app}"\n{extra}', users)
    return text.replace("[web]\nlisten = []\n", web)


class Reply:
    def __init__(self, response):
        self.status = response.status
        self.headers = response.headers
        self.raw = response.read()
        body = self.raw
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.body = body
        self.text = body.decode("utf-8", "replace")  # a binary file's body: see body

    def json(self):
        return json.loads(self.text)

    @property
    def cookie(self):
        """The hpxd_session value the reply sets, or None."""
        for header in self.headers.get_all("set-cookie") or []:
            name, _, rest = header.partition("=")
            if name == "hpxd_session":
                return rest.split(";")[0]
        return None

    def __repr__(self):
        return f"<Reply {self.status} {self.text[:300]!r}>"


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        return Reply(connection.getresponse())
    finally:
        connection.close()


def form(**values):
    """A urlencoded body, each value ``'\\x00' + JSON`` as Heapkeeper's client sends it."""
    return "&".join(f"{quote(name)}={quote(chr(0) + json.dumps(value))}"
                    for name, value in values.items())


FORM = {"content-type": "application/x-www-form-urlencoded"}


def post_form(port, path, body, headers=None):
    return request(port, "POST", path, body, {**FORM, **(headers or {})})


def log_in(port):
    """A session cookie of ``USER``."""
    reply = request(port, "POST", "/session", json.dumps({"user": USER, "password": PASSWORD}),
                    {"content-type": "application/json"})
    assert reply.status == 200, reply
    return reply.cookie

"""A blocking client of the form door for tests against a real daemon: one
``User`` is one browser (its own session cookie), reading pages as the
client script does and calling /forms/api/ (tests/test_forms_api.py,
tests/test_forms_nodes.py)."""

import json
import re
import time
import uuid
from html import unescape
from urllib.parse import urlencode

from hpxd.core.passwords import hash_password
from tests.support import tcp_config
from tests.web_http import request

PASSWORDS = {"alice": "alice-forms-pw", "bob": "bob-forms-pw", "vera": "vera-forms-pw"}
ROLES = {"alice": "user", "bob": "user", "vera": "viewer"}
# A config's roles replace the built-in ones: "guest" and "user" are given again.
ROLES_TOML = ('[roles.guest]\nprivileges = { "*" = ["view"] }\n'
              '[roles.user]\nprivileges = { "*" = ["view", "create", "edit", "delete"] }\n'
              '[roles.viewer]\nprivileges = { "*" = ["view"] }\n')
FORM_TYPE = {"content-type": "application/x-www-form-urlencoded"}


def forms_config(web_port, app="tests.forms_app", extra=""):
    """A config for ``app`` with the web door on ``web_port`` (its origin
    allowed) and the users of PASSWORDS."""
    users = [(name, hash_password(PASSWORDS[name], log2_n=10), ROLES[name]) for name in PASSWORDS]
    web = (f'[web]\nlisten = ["tcp:{web_port}:interface=127.0.0.1"]\n'
           f'allowed_origins = ["http://127.0.0.1:{web_port}"]\n')
    text = tcp_config(f'[app]\nmodule = "{app}"\n[auth]\nfailed_login_delay = 0.1\n'
                      + ROLES_TOML + extra, users)
    return text.replace("[web]\nlisten = []\n", web)


class Page:
    """A form page as the client script reads it."""

    def __init__(self, reply):
        self.reply = reply
        self.text = reply.text

    def hidden(self, name):
        match = re.search(rf'<input type="hidden" name="{name}"[^>]* value="([^"]*)"', self.text)
        return unescape(match.group(1)) if match else None

    @property
    def sip(self):
        return self.hidden("s")

    @property
    def hash(self):
        return self.hidden("recordHashMd5")

    def attribute(self, name):
        """Every value of the attribute ``name`` in the page, in order."""
        return [unescape(v) for v in re.findall(rf'{name}="([^"]*)"', self.text)]

    def typeahead_sip(self):
        return self.attribute("data-typeahead-sip")[0]

    def table_sip(self):
        return re.search(r'<table class="hpxd-table"[^>]* data-sip="([^"]*)"', self.text).group(1)

    def row_ids(self):
        return [int(v) for v in self.attribute("data-dnd-id")]

    def download_href(self, name):
        match = re.search(rf'data-download="{name}"[^>]* (?:href|src)="([^"]*)"', self.text)
        return unescape(match.group(1)) if match else None


class User:
    """One browser: a session cookie (a guest's until ``log_in``) and a tab id."""

    def __init__(self, port, name=None):
        self.port = port
        self.cookie = None
        self.tab = uuid.uuid4().hex
        if name is not None:
            self.log_in(name)

    def log_in(self, name):
        reply = request(self.port, "POST", "/session",
                        json.dumps({"user": name, "password": PASSWORDS[name]}),
                        {"content-type": "application/json"})
        assert reply.status == 200, reply
        self.cookie = reply.cookie
        return self

    def log_out(self):
        return self.send("DELETE", "/session")

    def send(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.cookie:
            headers["cookie"] = f"hpxd_session={self.cookie}"
        reply = request(self.port, method, path, body, headers)
        if reply.cookie is not None:  # a page stored this guest's session
            self.cookie = reply.cookie or None
        return reply

    def page(self, name, record_id=None):
        path = f"/forms/{name}" + (f"?r={record_id}" if record_id is not None else "")
        reply = self.send("GET", path)
        assert reply.status == 200, reply
        return Page(reply)

    def post(self, endpoint, fields, query=None):
        """POST urlencoded ``fields`` to /forms/api/<endpoint>: the reply."""
        path = f"/forms/api/{endpoint}" + (f"?{urlencode(query)}" if query else "")
        return self.send("POST", path, urlencode(fields), FORM_TYPE)

    def get(self, endpoint, **params):
        return self.send("GET", f"/forms/api/{endpoint}?{urlencode(params)}")

    def save(self, page, values, reason="save"):
        fields = {"s": page.sip, "recordHashMd5": page.hash or "", "tabUniqId": self.tab,
                  **values}
        return self.post("save", fields, {"submit_reason": reason})

    def dirty(self, page, action, record_hash=None):
        return self.get("dirty", s=page.sip, action=action, tabUniqId=self.tab,
                        recordHashMd5=page.hash if record_hash is None else record_hash)

    def new_record(self, form, values):
        """Save a new record through ``form``'s page: its id."""
        reply = self.save(self.page(form), values)
        body = reply.json()
        assert reply.status == 200 and body["status"] == "success", reply
        return body["record-id"]


def until(predicate, timeout=10.0, interval=0.05):
    """Block until ``predicate()`` is true (a test without a reactor
    polling a real daemon: tests.support.wait_until is the reactor's)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(interval)

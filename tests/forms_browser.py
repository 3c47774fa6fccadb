"""What tests/test_forms_browser.py and docs/make_form_screenshots.py share:
a demo daemon's config with two users, logging a browser context in, and
making contacts over plain HTTP."""

import html
import json
import re
import time
from urllib.parse import urlencode

from hpxd.core.passwords import hash_password
from tests.support import free_port, tcp_config
from tests.web_http import FORM, request

USERS = {"ann": "ann-forms-pw", "bob": "bob-forms-pw"}  # both of role "user"
TIMEOUT_MS = 10000
COUNTRIES_READY = "process 'add_countries' returned"


def config():
    """The demo app, the web door on a port chosen now (its origin allowed)."""
    users = [(name, hash_password(password, log2_n=10), "user")
             for name, password in USERS.items()]
    port = free_port()
    web = (f'[web]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
           f'allowed_origins = ["http://127.0.0.1:{port}"]\n')
    text = tcp_config('[server]\nname = "forms-test"\n[app]\nmodule = "hpxd.demo"\n', users)
    return text.replace("[web]\nlisten = []\n", web)


def wait_for_countries(daemon, timeout=20):
    """The demo fills its countries table in a process at start: wait for it."""
    deadline = time.monotonic() + timeout
    while COUNTRIES_READY not in daemon.log():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the countries were not added:\n{daemon.log()}")
        time.sleep(0.05)


def origin(daemon):
    return f"http://127.0.0.1:{daemon.web_port}"


def logged_in_page(browser, daemon, user, viewport=None, password=None):
    """A new browser context logged in as ``user`` and a page of it."""
    context = browser.new_context(viewport=viewport or {"width": 1000, "height": 900})
    password = password or USERS[user]
    answer = context.request.post(origin(daemon) + "/session",
                                  data=json.dumps({"user": user, "password": password}),
                                  headers={"content-type": "application/json"})
    assert answer.ok, answer.text()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    # the pages allow no inline script or style: a violation is a bug of the client
    page.on("console", lambda message: page.errors.append(message.text)
            if "Content Security Policy" in message.text else None)
    return page


def http_log_in(daemon, user):
    reply = request(daemon.web_port, "POST", "/session",
                    json.dumps({"user": user, "password": USERS[user]}),
                    {"content-type": "application/json"})
    assert reply.status == 200, reply
    return reply.cookie


def add_contact(daemon, cookie, **values):
    """A new contact saved through the form door as the page would; its id."""
    headers = {"cookie": f"hpxd_session={cookie}"}
    page = request(daemon.web_port, "GET", "/forms/contact", headers=headers)
    assert page.status == 200, page
    sip = html.unescape(re.search(r'name="s" value="([^"]+)"', page.text).group(1))
    body = urlencode({"s": sip, **values})
    reply = request(daemon.web_port, "POST", "/forms/api/save?submit_reason=save", body,
                    {**FORM, **headers})
    answer = reply.json()
    assert answer["status"] == "success", answer
    return answer["record-id"]

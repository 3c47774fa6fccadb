"""The app the Jam.py door's tests run against (tests/test_jam_api.py,
tests/test_jam_browser.py): a table-backed ``catalog`` with a client
module, functions of each privilege, a report and a nested item, a
``notes`` item without a table, and a task function."""

import os

from hpxd.app import File, Task

task = Task("jamtest", caption="Jam test")

catalog = task.item("catalog", fields={"name": "text", "price": "real", "qty": "integer",
                                       "added": "date", "in_stock": "boolean"})
catalog.client_module(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "jam_catalog.js"))
parts = catalog.item("parts", fields={"label": "text"})
notes = task.item("notes")


@task.function
def add(item, a, b):
    return a + b


@task.function
def whoami(item):
    return dict(item.session.user_info)


@catalog.function
def test(item, a, b):
    """The seed's example: task.catalog.server('test', [1, 2])."""
    return a + b


@catalog.function
def greet(item, name, greeting="hello"):
    return f"{greeting} {name}"


@catalog.function
def refuse(item, why):
    raise item.error(why)


@catalog.function
def crash(item):
    raise RuntimeError("secret database text that must never reach a client")


@catalog.function
def not_json(item):
    return {1, 2}


@catalog.function(requires="edit")
def restock(item, qty):
    return qty


@catalog.report
async def price_list(item, title="Prices"):
    """Every record's name and price, as text."""
    records = await item.records.open(order_by=["name"])
    lines = [title] + [f"{r['name']}: {r['price']}" for r in records]
    return File("price-list.txt", "text/plain; charset=utf-8", "\n".join(lines).encode())


# -- the daemon's config, for the tests -------------------------------------------

# user name -> role; each user's password is "<name>-pw"
USERS = {"editor": "editor", "viewer": "viewer", "creator": "creator", "changer": "changer",
         "remover": "remover"}
ROLES = {"guest": ["view"], "viewer": ["view"], "editor": ["view", "create", "edit", "delete"],
         "creator": ["view", "create"], "changer": ["view", "edit"], "remover": ["view", "delete"]}


def password(user):
    return f"{user}-pw"


def config(web_port, backend=None, guests=True, static_dir=""):
    """A config running this app with the web door on ``web_port`` (its own
    origin allowed), the TCP door on a free port, and ``backend`` (a
    ``[backend]`` dict; None: memory)."""
    from hpxd.core.passwords import hash_password
    text = ('[server]\nname = "jam-test"\n[app]\nmodule = "tests.jam_app"\n'
            '[tcp]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
            f'[web]\nlisten = ["tcp:{web_port}:interface=127.0.0.1"]\n'
            f'allowed_origins = ["http://127.0.0.1:{web_port}"]\nstatic_dir = "{static_dir}"\n'
            f'[auth]\nfailed_login_delay = 0.05\nguest_allowed = {str(guests).lower()}\n')
    for key, value in (backend or {}).items():
        text += ("[backend]\n" if key == "kind" else "") + f'{key} = "{value}"\n'
    for role, privileges in ROLES.items():
        text += f'[roles.{role}]\nprivileges = {{ "*" = {privileges!r} }}\n'.replace("'", '"')
    for user, role in USERS.items():
        text += (f'[[users]]\nname = "{user}"\npassword_hash = '
                 f'"{hash_password(password(user), log2_n=10)}"\nrole = "{role}"\n')
    return text

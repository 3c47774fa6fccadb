"""The embedded default application: enough to try every door by hand.

    add(a, b)                 a + b
    echo(value)               value back
    whoami()                  your user name and role
    count()                   a counter kept in your session's data
    remember(key, value)      store in the shared scope (edit privilege)
    recall(key)               read from the shared scope
    wait(seconds)             answer after a delay (at most 30 s), off the reactor
    countdown(start)          sends start, start-1, ... 1 with item.send, returns "liftoff"
    announce(message)         broadcast to every client (edit privilege)
    watch_clock(seconds)      the "clock" process pushes "tick" to this
                              connection every second for that long (10 s
                              by default, at most 300)
    fail()                    raises an unexpected error (shows code 100)
    catalog.test(a, b)        a + b, refused to guests
    catalog.list(limit, offset, filters, order_by)
                              records of the catalog table (docs/records.md)
    catalog.count(filters)    how many records match
    catalog.get(id)           {"record": ..., "hash": ...} or null
    catalog.add(name, price)  insert a record, returns its id (create privilege)
    catalog.save(id, values, expect_hash)
                              update a record; refused (400) if it changed
                              since its hash was read (edit privilege)
    catalog.remove(id)        delete a record (delete privilege)
"""

import time

from twisted.internet import reactor, task as ttask

from hpxd.app import FormField, Task, record_hash

task = Task("demo")


@task.function
def add(item, a, b):
    """a + b: two numbers added, or two strings or lists joined."""
    return a + b


@task.function(get=True)
def echo(item, value=None):
    """value, sent back as it came (null when left out)."""
    return value


@task.function(get=True)
def whoami(item):
    """Your session's user name and role (user name null for a guest)."""
    return dict(item.session.user_info)


@task.function
def count(item):
    """A counter kept in your session's data: 1, 2, 3, ... on each call."""
    item.session.data["count"] = item.session.data.get("count", 0) + 1
    return item.session.data["count"]


@task.function(requires="edit")
async def remember(item, key, value):
    """Store value under key in the scope shared by every client and node."""
    await item.scope.set(str(key), value)
    return True


@task.function
async def recall(item, key):
    """The value stored under key by remember, or null."""
    return await item.scope.get(str(key))


@task.function
async def wait(item, seconds=1.0):
    """Answer after seconds (1 by default, at most 30), without holding up anyone else."""
    seconds = min(max(float(seconds), 0.0), 30.0)
    await ttask.deferLater(reactor, seconds, lambda: None)
    return seconds


@task.function
async def countdown(item, start=3):
    """Send start, start - 1, ... 1 one by one (a stream), then return "liftoff"."""
    for n in range(min(int(start), 100), 0, -1):
        item.send(n)
        await ttask.deferLater(reactor, 0.05, lambda: None)
    return "liftoff"


@task.function(requires="edit")
async def announce(item, message):
    """Broadcast message, with your name, to every connected client."""
    await item.broadcast("announce", {"message": str(message),
                                      "from": item.session.user_name})
    return True


@task.function
async def watch_clock(item, seconds=10):
    """The clock process pushes "tick" to this connection every second for
    seconds (10 by default, at most 300)."""
    client_id = item.environ.get("client_id")
    if client_id is None:
        raise item.error("watch_clock needs a door that takes pushes (TCP or WebSocket)")
    seconds = min(max(float(seconds), 1.0), 300.0)
    # Read, change, write: two calls at the same instant may race and the
    # last one wins (the scope has no atomic update); a demo can live with it.
    watchers = await item.scope.get(WATCHERS, {})
    watchers[client_id] = time.time() + seconds
    await item.scope.set(WATCHERS, watchers)
    return seconds


WATCHERS = "demo.clock.watchers"


@task.process("clock", interval=1.0)
async def clock(ctx):
    """Runs once in the cluster: pushes to each watcher, forgets the expired."""
    watchers = await ctx.scope.get(WATCHERS, {})
    if not watchers:
        return
    now = time.time()
    for client_id, until in watchers.items():
        if until > now:
            await ctx.push("tick", {"time": time.strftime("%H:%M:%S"), "left": round(until - now)},
                           client_id=client_id)
    expired = [client_id for client_id, until in watchers.items() if until <= now]
    if expired:
        for client_id in expired:
            del watchers[client_id]
        await ctx.scope.set(WATCHERS, watchers)


@task.function
def fail(item):
    """Always fails with an unexpected error: what a bug looks like (code 100)."""
    raise RuntimeError("the demo's fail() always fails")


catalog = task.item("catalog", fields={"name": "text", "price": "real"})


@catalog.function
def test(item, a, b):
    """a + b, refused to guests."""
    if item.session.role == "guest":
        raise item.error("guests may not test")
    return a + b


@catalog.function(name="list")
async def list_(item, limit=100, offset=0, filters=None, order_by=None):
    """Catalog records: filters [[field, op, value], ...], order_by ["-price", "name"]."""
    return await item.records.open(filters=filters, order_by=order_by, limit=limit,
                                   offset=offset)


@catalog.function
async def count(item, filters=None):
    """How many catalog records match filters ([[field, op, value], ...]; all without)."""
    return await item.records.count(filters=filters)


@catalog.function
async def get(item, id):
    """The record with this id and its hash (send it back to save), or null."""
    record = await item.records.get(id)
    return None if record is None else {"record": record, "hash": record_hash(record)}


@catalog.function(requires="create", name="add")
async def add_row(item, name, price):
    """Insert a catalog record; returns its id."""
    return await item.records.insert({"name": name, "price": price})


@catalog.function(requires="edit")
async def save(item, id, values, expect_hash=None):
    """Change fields of a record; with expect_hash, only if nobody saved it since."""
    return await item.records.update(id, values, expect_hash=expect_hash)


@catalog.function(requires="delete")
async def remove(item, id):
    """Delete the catalog record with this id."""
    return await item.records.delete(id)


# -- files (docs/files.md) ----------------------------------------------------------
# "documents" takes uploads (POST /upload, edit privilege) of these types;
# GET /download/<id> needs view on it. The catalog's report "price_list"
# makes a CSV file that downloads once, by the session that asked for it
# (Jam.py's print, /api).

documents = task.item("documents")
documents.uploads(["pdf", "txt", "csv", "png", "jpg"])


@catalog.report
async def price_list(item, limit=100):
    """The catalog as CSV (name, price), by name, at most limit records."""
    import csv
    import io

    from hpxd.app import File
    records = await item.records.open(order_by=["name"], limit=limit)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "price"])
    for record in records:
        writer.writerow([record["name"], record["price"]])
    return File("price-list.csv", "text/csv", out.getvalue().encode("utf-8"))


# -- /ext: requests from other services (docs/http.md) ----------------------------
#   POST /ext/ping     public: {"pong": true, "params": <the body>}
#   POST /ext/echo     needs a token of [web] ext_tokens:
#                      {"path", "params", "peer"} of the request

@task.on_ext_request(public=["ping"])
def ext_request(item, path, params, environ):
    """Answer another service's POST /ext/<path>."""
    if path == "ping":
        return {"pong": True, "params": params}
    if path == "echo":
        return {"path": path, "params": params, "peer": environ["peer"]}
    raise item.error(f"the demo has no /ext/{path}")


# -- forms (docs/forms.md): /forms/contact, /forms/contact-list ---------------------
# A contact form over the QFQ protocol: "company" shows only while
# "has_company" is ticked (a rule), "country" suggests from the countries
# table (typeahead), "avatar" takes an image and offers its thumbnail.

COUNTRY_NAMES = (
    "Argentina", "Australia", "Austria", "Belgium", "Brazil", "Canada", "Chile", "China",
    "Czechia", "Denmark", "Egypt", "Estonia", "Finland", "France", "Germany", "Greece",
    "Hungary", "Iceland", "India", "Ireland", "Italy", "Japan", "Kenya", "Mexico",
    "Netherlands", "New Zealand", "Norway", "Poland", "Portugal", "South Africa",
    "South Korea", "Spain", "Sweden", "Switzerland", "Turkey", "United Kingdom",
    "United States", "Uruguay")

countries = task.item("countries", fields={"name": "text"})
contacts = task.item("contacts", fields={
    "name": "text", "email": "text", "has_company": "boolean", "company": "text",
    "country": "text", "avatar": "text", "position": "integer"})
contacts.uploads(["png", "jpg", "jpeg", "gif", "webp"])

contact = contacts.form("contact", [
    FormField("name", required=True, max_length=100),
    FormField("email", label="E-mail", max_length=254,
              pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+", pattern_message="is not an e-mail address"),
    FormField("has_company", label="Works for a company"),
    FormField("company", max_length=100),
    FormField("country", typeahead=("countries", "name"), max_length=100),
    FormField("avatar", "file", label="Avatar (an image)"),
], lock="exclusive", caption="Contact", close_url="/forms/contact-list")
contact.download("avatar", field="avatar")  # the image as it was uploaded
contact.download("avatar_thumbnail", "thumbnail", field="avatar", width=96)
contact.download("contacts_xlsx", "excel", filename="contacts.xlsx")  # every contact
contact.table_view("contact-list", ["name", "email", "company", "country"],
                   order_field="position", caption="Contacts")


@contact.rule
def company_when_ticked(values):
    """The company field shows, and is required, only for someone who works for one."""
    ticked = bool(values.get("has_company"))
    return {"company": {"hidden": not ticked, "required": ticked}}


@task.process("add_countries")
async def add_countries(ctx):
    """Fills the countries table once, when it is empty (runs once in the cluster)."""
    countries = ctx.records("countries")
    if await countries.count() == 0:
        await countries.apply(insert=[{"name": name} for name in COUNTRY_NAMES])
        ctx.log.info("added {n} countries", n=len(COUNTRY_NAMES))

"""The form door on two real nodes (twistd) sharing one Redis and one
PostgreSQL: a SIP issued through node A works through node B, a record
lock taken through A conflicts through B, and a logout through B ends the
SIPs A issued."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.forms_http import User, forms_config
from tests.support import free_port


@pytest.fixture
def two_nodes(postgres_url, redis_server, daemons):  # daemons stop first
    shared = (f'[database]\nurl = "{postgres_url}"\n'
              f'[backend]\nkind = "redis"\nredis_url = "{redis_server.url}"\n')
    configs = [forms_config(free_port(), extra=shared) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:  # both make the tables at once
        a, b = pool.map(lambda args: daemons(args[0], name=args[1]), zip(configs, "ab"))
    return a, b


def on(node, user):
    """``user`` (its session cookie and tab) talking to ``node``."""
    other = User(node.web_port)
    other.cookie, other.tab = user.cookie, user.tab
    return other


def status(reply):
    assert reply.status == 200, reply
    return reply.json()["status"]


def test_a_sip_issued_on_a_works_on_b(two_nodes):
    a, b = two_nodes
    alice_a = User(a.web_port, "alice")
    alice_b = on(b, alice_a)
    page = alice_a.page("note")
    assert status(alice_b.post("load", {"s": page.sip, "title": "x"})) == "success"
    saved = alice_b.save(page, {"title": "made through B"}).json()
    assert saved["status"] == "success", saved
    assert 'value="made through B"' in alice_a.page("note", saved["record-id"]).text
    assert on(b, User(a.web_port, "bob")).post("load", {"s": page.sip}).status == 403


def test_a_lock_taken_on_a_conflicts_on_b(two_nodes):
    a, b = two_nodes
    alice_a, bob_b = User(a.web_port, "alice"), User(b.web_port, "bob")
    record_id = alice_a.new_record("note", {"title": "shared"})
    mine, theirs = alice_a.page("note", record_id), bob_b.page("note", record_id)
    assert status(alice_a.dirty(mine, "lock")) == "success"
    assert status(bob_b.dirty(theirs, "lock")) == "conflict"
    assert bob_b.post("delete", {"s": theirs.sip}).status == 403
    assert status(on(b, alice_a).dirty(mine, "release")) == "success"  # released through B
    assert status(bob_b.dirty(theirs, "lock")) == "success"
    assert status(alice_a.dirty(mine, "lock")) == "conflict"


def test_a_logout_on_b_ends_the_sips_issued_on_a(two_nodes):
    a, b = two_nodes
    alice_a = User(a.web_port, "alice")
    page = alice_a.page("note")
    cookie = alice_a.cookie
    assert on(b, alice_a).log_out().status == 200
    alice_a.cookie = cookie
    reply = alice_a.post("load", {"s": page.sip})
    assert reply.status in (401, 403) and reply.json()["status"] == "error", reply

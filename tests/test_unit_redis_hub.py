"""What the Redis hub does with what arrives on its pub/sub channel (no Redis needed)."""

import json
from types import SimpleNamespace

import pytest
from zope.interface import implementer

from hpxd.backends.redis import HUB_FORMAT, RedisHub
from hpxd.core.interfaces import IHubClient


@implementer(IHubClient)
class Client:
    def __init__(self, client_id, session_id=None):
        self.client_id, self.session_id, self.got = client_id, session_id, []

    def deliver(self, message):
        self.got.append((message.action, message.data))


@pytest.fixture
def hub():
    hub = RedisHub(SimpleNamespace(settings={"db": 0}))
    hub.client = Client("c1", "s1")
    hub.register(hub.client)
    yield hub
    hub.unregister(hub.client)


def message(**fields):
    base = {"v": HUB_FORMAT, "node": "other-node", "action": "news", "data": 1,
            "session": None, "client": None}
    base.update(fields)
    return json.dumps(base)


def test_a_push_from_another_node_is_delivered(hub):
    hub.received(message(data={"x": 1}))
    hub.received(message(session="s1", action="mine"))
    hub.received(message(session="s2", action="not-mine"))
    hub.received(message(client="c1", action="direct"))
    assert hub.client.got == [("news", {"x": 1}), ("mine", 1), ("direct", 1)]


def test_own_messages_are_not_delivered_twice(hub):
    hub.received(message(node=hub.node_id))
    assert hub.client.got == []


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "null", json.dumps({"v": HUB_FORMAT}),
                                  json.dumps({"v": HUB_FORMAT, "node": "x"}), "\x00\xff"])
def test_malformed_messages_are_ignored_and_logged(hub, text):
    from twisted.logger import globalLogPublisher
    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        hub.received(text)
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert hub.client.got == []
    assert any("malformed hub message" in e.get("log_format", "") for e in seen)
    hub.received(message())  # and the hub goes on
    assert hub.client.got == [("news", 1)]


def test_other_format_versions_are_ignored_and_logged_once(hub):
    from twisted.logger import globalLogPublisher
    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        for _ in range(3):
            hub.received(message(v=HUB_FORMAT + 1))
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert hub.client.got == []
    assert sum("ignoring hub messages of format" in e.get("log_format", "") for e in seen) == 1

"""What the Redis hub does with what arrives on its pub/sub channel (no Redis needed)."""

import json
from types import SimpleNamespace

import pytest
from zope.interface import implementer

from hpxd.backends.redis import HUB_FORMAT, RedisHub
from hpxd.core.hub import PUSH
from hpxd.core.interfaces import IHubClient


@implementer(IHubClient)
class Client:
    def __init__(self, client_id, session_id=None):
        self.client_id, self.session_id, self.got = client_id, session_id, []
        self.messages = []

    def deliver(self, message):
        self.got.append((message.action, message.data))
        self.messages.append(message)


@pytest.fixture
def hub():
    hub = RedisHub(SimpleNamespace(settings={"db": 0}))
    hub.client = Client("c1", "s1")
    hub.register(hub.client)
    yield hub
    hub.unregister(hub.client)


def message(**fields):
    base = {"v": HUB_FORMAT, "node": "other-node", "action": "news", "data": 1,
            "stream": None, "session": None, "client": None}
    base.update(fields)
    return json.dumps(base)


def test_a_push_from_another_node_is_delivered(hub):
    hub.received(message(data={"x": 1}))
    hub.received(message(session="s1", action="mine"))
    hub.received(message(session="s2", action="not-mine"))
    hub.received(message(client="c1", action="direct"))
    assert hub.client.got == [("news", {"x": 1}), ("mine", 1), ("direct", 1)]


def test_the_stream_crosses_and_a_message_without_one_has_none(hub):
    hub.received(message(stream="ticker", action="tick"))
    hub.received(message(session="s1", stream="indexer"))
    without = json.loads(message())
    del without["stream"]  # as a node from before streams sends it
    hub.received(json.dumps(without))
    assert [m.stream for m in hub.client.messages] == ["ticker", "indexer", None]
    assert all(m.kind == PUSH for m in hub.client.messages)


def test_pushes_publish_their_stream_and_deliver_it_locally():
    from twisted.internet import defer
    published = []
    link = SimpleNamespace(settings={"db": 0},
                           run=lambda *args: published.append(args) or defer.succeed(1))
    hub = RedisHub(link)
    local = Client("c1", "s1")
    hub.register(local)
    hub.broadcast("a", 1, stream="p1")
    hub.send_to_session("s1", "b", 2, stream="p2")
    hub.send_to_client("elsewhere", "c", 3, stream="p3")  # not here: published only
    assert [m.stream for m in local.messages] == ["p1", "p2"]
    sent = [json.loads(text) for command, channel, text in published]
    assert [(m["action"], m["stream"], m["session"], m["client"]) for m in sent] == [
        ("a", "p1", None, None), ("b", "p2", "s1", None), ("c", "p3", None, "elsewhere")]
    assert {command for command, _, _ in published} == {"publish"}


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

"""Processes in real ``twistd`` daemons, seen by independent clients (the
``websockets`` library and a raw HPX socket): pushes to every client and to
one, and on two nodes sharing a real Redis: one run in the cluster, taken
over when its node is killed."""

import json
import time

from websockets.sync.client import connect

from tests.support import RawClient

APP = '[app]\nmodule = "tests.process_app"\n'
WEB = '[web]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
TCP = '[tcp]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'


def config(name, extra=""):
    return f'[server]\nname = "{name}"\n' + TCP + WEB + APP + extra


def ws(daemon):
    return connect(f"ws://127.0.0.1:{daemon.web_port}/ws", open_timeout=5)


def ask(conn, stream, action, data=None):
    """Send one action; its data values up to its close (pushes met meanwhile are dropped)."""
    conn.send(json.dumps({"streamId": stream, "action": action, "data": data}))
    values = []
    while True:
        message = json.loads(conn.recv(timeout=10))
        if message.get("streamId") != stream or "action" in message:
            continue
        assert "error" not in message, message
        if message.get("close"):
            return values
        values.append(message["data"])


def pushes(conn, action, count, timeout=10):
    """The next ``count`` pushes of ``action`` (streamId, data), others skipped."""
    out, deadline = [], time.monotonic() + timeout
    while len(out) < count:
        message = json.loads(conn.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("action") == action:
            out.append((message["streamId"], message["data"]))
    return out


def test_a_process_pushes_to_every_client_and_to_one(daemons):
    daemon = daemons(config("solo"), name="solo")
    with ws(daemon) as chosen, ws(daemon) as other:
        # Igor's introduce_self: no answer at all when it succeeds (the
        # memory backend's lease is taken before the next message is read)
        chosen.send(json.dumps({"streamId": 1, "action": "introduce_self",
                                "data": {"client_id": "desk-1"}}))
        assert ask(other, 1, "add", [1, 1]) == [2]
        tcp = RawClient(daemon.tcp_port)
        tcp.recv()
        tcp.call({})  # a guest: pushes reach it too
        assert ask(chosen, 2, "target", ["desk-1"]) == [True]
        # every client gets the beats, with the process's name as streamId
        for conn in (chosen, other):
            beats = pushes(conn, "beat", 3)
            assert all(stream == "beat" and data["node"] == "solo" for stream, data in beats)
            numbers = [data["n"] for _, data in beats]
            assert numbers == sorted(numbers) and len(set(numbers)) == 3
        tcp_push = tcp.recv()
        assert tcp_push["data"]["action"] == "beat" and tcp_push["data"]["stream"] == "beat"
        tcp.close()
        # only the chosen client gets "just-you"
        assert pushes(chosen, "just-you", 2)[0][0] == "beat"
        ask(other, 2, "add", [1, 2])
        time.sleep(0.5)
        other.send(json.dumps({"streamId": 3, "action": "add", "data": [0, 0]}))
        seen = []
        while True:
            message = json.loads(other.recv(timeout=10))
            seen.append(message.get("action"))
            if message.get("streamId") == 3 and message.get("close"):
                break
        assert "just-you" not in seen
    assert "process 'beat' started on node 'solo'" in daemon.log()


def test_a_process_runs_once_on_two_nodes_and_is_taken_over_when_its_node_dies(
        daemons, redis_server):
    backend = (f'[backend]\nkind = "redis"\nredis_url = "{redis_server.url}"\n'
               '[processes]\nlease_seconds = 2\n')
    a = daemons(config("node-a", backend), name="a")
    time.sleep(0.5)  # a takes the lease first
    b = daemons(config("node-b", backend), name="b")
    with ws(b) as on_b, ws(a) as on_a:
        beats_b = pushes(on_b, "beat", 10)
        beats_a = pushes(on_a, "beat", 10)
        # one run in the cluster: every beat comes from node A, numbered once
        for beats in (beats_a, beats_b):
            assert {data["node"] for _, data in beats} == {"node-a"}
            numbers = [data["n"] for _, data in beats]
            assert numbers == list(range(numbers[0], numbers[0] + 10))
        assert "process 'beat' started" not in b.log()
    with ws(b) as on_b:
        a.kill()
        killed = time.monotonic()
        while True:
            [(_, data)] = pushes(on_b, "beat", 1, timeout=15)
            if data["node"] == "node-b":
                break
        took_over = time.monotonic() - killed
        assert took_over < 2 + 1 + 1  # lease time, one renewal interval, slack
        more = [data for _, data in pushes(on_b, "beat", 5)]
        assert {d["node"] for d in more} == {"node-b"}
        # the count went on from where A left it (scope is shared): no restart at 1
        assert more[0]["n"] > 10
    assert "process 'beat' started on node 'node-b'" in b.log()

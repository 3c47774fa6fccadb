"""ProcessRunner on a fake clock: start, restart with back-off, stop, and the
lease that makes a process run once among several runners (nodes)."""

from types import SimpleNamespace

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from hpxd.backends.memory import MemoryHub, MemoryLeases
from hpxd.core import errors
from hpxd.core.app import Task
from hpxd.core.processes import ProcessRunner

LEASE = 3.0  # seconds: runners renew every 1 s


class Node:
    def __init__(self, name="a"):
        self.name = name
        self.hub = MemoryHub()
        self.scope = None
        self.pushed = []
        self.hub._push = self._push  # record what the processes push, in order

    def _push(self, action, data, stream, session_id=None, client_id=None):
        self.pushed.append((action, data, stream, client_id))
        return defer.succeed(None)

    async def session_of(self, client_id):
        return None


@pytest.fixture
def log_events():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def runner_for(task, clock, leases=None, name="a"):
    leases = leases or MemoryLeases(clock)
    runner = ProcessRunner(Node(name), list(task.processes.values()), leases, LEASE, clock)
    return runner


def test_an_interval_process_runs_every_interval_until_stopped():
    task, clock = Task("t"), Clock()
    seen = []

    @task.process("tick", interval=0.5)
    def tick(ctx):
        seen.append(clock.seconds())
        return ctx.push("tick", len(seen))

    runner = runner_for(task, clock)
    runner.startService()
    clock.pump([0.5] * 4)
    assert seen == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert runner.node.pushed[:2] == [("tick", 1, "tick", None), ("tick", 2, "tick", None)]
    stopped = runner.stopService()
    assert stopped.called
    clock.pump([0.5] * 4)
    assert len(seen) == 5


def test_an_async_loop_process_is_cancelled_when_the_node_stops():
    task, clock = Task("t"), Clock()
    seen, ended = [], []

    @task.process("loop")
    async def loop(ctx):
        try:
            while True:
                seen.append(clock.seconds())
                await ctx.push("tick", None, client_id="desk-1")
                await ctx.sleep(1)
        finally:
            ended.append(True)

    runner = runner_for(task, clock)
    runner.startService()
    clock.pump([1] * 3)
    assert seen == [0, 1, 2, 3]
    assert runner.node.pushed[0] == ("tick", None, "loop", "desk-1")
    d = runner.stopService()
    assert d.called and ended == [True]
    clock.pump([1] * 3)
    assert len(seen) == 4


def test_a_failing_process_is_logged_and_restarted_with_a_back_off(log_events):
    task, clock = Task("t"), Clock()
    starts = []

    @task.process("flaky")
    def flaky(ctx):
        starts.append(clock.seconds())
        raise RuntimeError("boom")

    runner = runner_for(task, clock)
    runner.startService()
    for _ in range(40):
        clock.advance(0.25)
    # started at 0, then after 1, 2, 4 s of back-off (and the leases renewed meanwhile)
    assert starts == [0, 1, 3, 7]
    failures = [e for e in log_events if e.get("log_failure") is not None
                and e.get("name") == "flaky"]
    assert len(failures) == 4
    assert all(f["log_failure"].check(RuntimeError) for f in failures)
    runner.stopService()
    clock.advance(100)
    assert len(starts) == 4


def test_a_process_that_returns_is_not_started_again():
    task, clock = Task("t"), Clock()
    starts = []

    @task.process("once")
    def once(ctx):
        starts.append(clock.seconds())
        return "done"

    runner = runner_for(task, clock)
    runner.startService()
    clock.pump([1] * 10)
    assert starts == [0]
    runner.stopService()


def test_a_process_runs_once_among_runners_and_is_taken_over():
    task, clock = Task("t"), Clock()
    leases = MemoryLeases(clock)  # one store shared, as nodes share Redis
    runs = []

    @task.process("tick", interval=1)
    def tick(ctx):
        runs.append(ctx._node.name)

    a = runner_for(task, clock, leases, "a")
    b = runner_for(task, clock, leases, "b")
    a.startService()
    b.startService()
    clock.pump([1] * 5)
    assert set(runs) == {"a"} and len(runs) == 6
    runs.clear()
    # a stops cleanly: it frees the lease and b takes over at its next try
    a.stopService()
    clock.pump([0.5] * 4)
    assert runs and set(runs) == {"b"}
    b.stopService()


def test_a_runner_that_cannot_renew_stops_before_the_lease_runs_out(log_events):
    task, clock = Task("t"), Clock()
    leases = MemoryLeases(clock)
    runs = []

    @task.process("tick", interval=0.5)
    def tick(ctx):
        runs.append(clock.seconds())

    runner = runner_for(task, clock, leases)
    runner.startService()
    clock.advance(0.5)

    def unavailable(*args, **kwargs):
        return defer.fail(errors.BackendUnavailable("Redis is away"))

    leases.renew = leases.acquire = unavailable
    clock.pump([0.5] * 8)  # renewals at 1, 2, 3 ... fail
    last = runs[-1]
    assert last <= LEASE * 2 / 3 + 1  # stopped within two failed renewals
    assert last < LEASE  # before its lease ran out: no other node ran it meanwhile
    assert any("cannot be renewed" in str(e.get("why", "")) for e in log_events)


def test_a_runner_whose_lease_was_taken_stops_its_run():
    task, clock = Task("t"), Clock()
    leases = MemoryLeases(clock)
    runs = []

    @task.process("tick", interval=0.5)
    def tick(ctx):
        runs.append(clock.seconds())

    runner = runner_for(task, clock, leases)
    runner.startService()
    clock.advance(0.5)
    leases._held.clear()  # the lease ran out (Redis flushed, say)...
    leases.acquire("process:tick", "another-node", 100)  # ...and another node took it
    clock.pump([0.5] * 6)
    assert max(runs) <= 1.0
    runner.stopService()


def test_pushes_from_a_stopped_run_are_refused():
    task, clock = Task("t"), Clock()
    contexts = []

    @task.process("keeper")
    def keeper(ctx):
        contexts.append(ctx)
        return defer.Deferred()  # runs until cancelled

    runner = runner_for(task, clock)
    runner.startService()
    runner.stopService()
    failures = []
    contexts[0].push("late", 1).addErrback(failures.append)
    assert failures and failures[0].check(errors.ShuttingDown)
    assert runner.node.pushed == []


@pytest.mark.parametrize("name", ["server", "1abc", "a b", ""])
def test_process_names_are_identifiers(name):
    with pytest.raises(ValueError):
        Task("t").process(name)


def test_a_process_name_is_declared_once():
    task = Task("t")
    task.process("p")(lambda ctx: None)
    with pytest.raises(ValueError):
        task.process("p")(lambda ctx: None)


def test_interval_must_be_positive():
    with pytest.raises(ValueError):
        Task("t").process("p", interval=0)


def test_ctx_scope_is_the_nodes_scope():
    task, clock = Task("t"), Clock()
    got = []
    task.process("p")(lambda ctx: got.append(ctx.scope))
    runner = runner_for(task, clock)
    runner.node.scope = SimpleNamespace(name="scope")
    runner.startService()
    assert got == [runner.node.scope]
    runner.stopService()


def test_a_lease_granted_after_the_node_stopped_is_given_back():
    task, clock = Task("t"), Clock()
    leases = MemoryLeases(clock)
    answer = defer.Deferred()
    real_acquire = leases.acquire
    leases.acquire = lambda *args, **kwargs: answer  # Redis answers late
    task.process("tick", interval=1)(lambda ctx: None)
    runner = runner_for(task, clock, leases)
    runner.startService()
    runner.stopService()  # while the acquire is on its way
    real_acquire("process:tick", runner.holder, LEASE)  # Redis granted it
    answer.callback(True)
    assert leases._holder("process:tick") is None  # freed, not held until it expires


def test_ctx_records_is_the_items_table_and_refuses_an_item_without_one():
    task, clock = Task("t"), Clock()
    notes = task.item("notes", fields={"title": "text"})
    task.item("plain")
    got = []

    def process(ctx):
        got.append(ctx.records("notes"))
        for path in ("plain", "nosuch"):
            with pytest.raises(errors.FunctionNotFound):
                ctx.records(path)
    task.process("p")(process)
    runner = runner_for(task, clock)
    runner.node.task = task
    runner.node.records = SimpleNamespace(table=lambda item: ("table of", item))
    runner.startService()
    assert got == [("table of", notes)]
    runner.stopService()

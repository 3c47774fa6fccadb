"""Background processes (Igor's "processes"), without threads.

An app declares one with ``@task.process(name)`` on a function taking a
``ProcessContext``, written either way:

- ``async def`` (or returning a Deferred): runs until it returns; a loop
  waits with ``await ctx.sleep(seconds)``;
- ``@task.process(name, interval=seconds)``: called every ``seconds`` by a
  ``LoopingCall``; a call that returns a Deferred is waited for.

The node's ``ProcessRunner`` runs each process ONCE in the cluster: it runs
where it holds the lease ``process:<name>`` (``ILeases``), which it renews
every third of ``[processes] lease_seconds``. A node that cannot renew
(Redis away) stops its processes before the lease can run out, so two nodes
never run one process for long; a node that dies frees the lease when it
runs out, and another node takes the process over on its next try. On the
memory backend the one node always holds every lease.

A process that raises is logged and started again after a back-off (1 s,
doubling up to a minute); one that returns is logged and not started again
on this node (it keeps the lease, so no other node starts it either).
"""

import inspect
import secrets

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from hpxd.core import errors

BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0  # seconds before a failed process starts again
BACKOFF_RESET = 60.0  # a process that ran this long starts its back-off afresh


class Process:
    """A declared process: ``fn(ctx)``, called every ``interval`` seconds or run once."""

    def __init__(self, name, fn, interval=None):
        self.name, self.fn, self.interval = name, fn, interval


class ProcessContext:
    """What a process gets: ``push``, ``scope``, ``session_of``, ``sleep``,
    ``log`` and ``node_name``.

    Pushes carry the process's name as their ``stream`` (the WebSocket door's
    ``streamId``), on every node.
    """

    def __init__(self, node, name, clock):
        self._node, self.name, self._clock = node, name, clock
        self.node_name = node.name  # [server] name of the node running it
        self.log = Logger(namespace=f"hpxd.process.{name}")
        self.running = True  # False once the node stopped this run of the process

    @property
    def scope(self):
        return self._node.scope

    def records(self, path):
        """The records of the table-backed item at ``path`` (a
        ``hpxd.core.records.RecordTable``, docs/records.md): a process is
        the server's own work, so no session's privileges apply."""
        item = self._node.task.item_by_name(path)
        if item is None or not item.fields or self._node.records is None:
            raise errors.FunctionNotFound(f"no table-backed item {path!r}")
        return self._node.records.table(item)

    def push(self, action, data=None, client_id=None):
        """Push ``action``/``data`` to every client of every node, or to the
        one client that goes by ``client_id``. Fires when it is sent."""
        if not self.running:  # a run the node stopped (it lost the lease, say)
            return defer.fail(errors.ShuttingDown(f"process {self.name!r} was stopped"))
        hub = self._node.hub
        if client_id is None:
            return hub.broadcast(action, data, stream=self.name)
        return hub.send_to_client(client_id, action, data, stream=self.name)

    def session_of(self, client_id):
        """Fire with the session of the client that goes by ``client_id``
        (``introduce_self``), or None."""
        return defer.ensureDeferred(self._node.session_of(client_id))

    def sleep(self, seconds):
        """A Deferred firing after ``seconds``; stopping the process cancels it."""
        return task.deferLater(self._clock, seconds, lambda: None)


class _Run:
    """One process on this node: its lease, its current run, its restarts."""

    def __init__(self, process):
        self.process = process
        self.holding = False
        self.renewed_at = 0.0
        self.ctx = None
        self.done = None  # Deferred of the current run
        self.looping = None
        self.restart = None  # DelayedCall of a restart after a failure
        self.failures = 0
        self.started_at = 0.0

    @property
    def lease(self):
        return "process:" + self.process.name


class ProcessRunner(service.Service):
    """Runs the task's processes on this node while it holds their leases."""

    log = Logger()

    def __init__(self, node, processes, leases, lease_seconds, clock):
        self.node, self.leases, self.ttl, self.clock = node, leases, lease_seconds, clock
        self.holder = f"{node.name}/{secrets.token_hex(8)}"
        self.runs = [_Run(p) for p in processes]
        self.loop = task.LoopingCall(self._tick)
        self.loop.clock = clock
        self._ticking = None

    def startService(self):
        super().startService()
        if self.runs:
            self.loop.start(self.ttl / 3, now=True)

    def stopService(self):
        """Stop every run and free the leases. Fires when the runs have ended."""
        super().stopService()
        if self.loop.running:
            self.loop.stop()
        stopped = [self._stop(run, "the node stops") for run in self.runs if run.holding]
        return defer.DeferredList(stopped, consumeErrors=True)

    # -- leases -------------------------------------------------------------------

    def _tick(self):
        # One tick at a time: Redis may answer slower than the interval.
        if self._ticking is None:
            self._ticking = defer.ensureDeferred(self._renew_and_acquire())
            self._ticking.addBoth(self._ticked)

    def _ticked(self, result):
        self._ticking = None
        if isinstance(result, Failure):
            self.log.failure("process leases", result)

    async def _renew_and_acquire(self):
        await self._renew([run for run in self.runs if run.holding])
        for run in self.runs:
            if not run.holding and self.running:
                await self._acquire(run)

    async def _renew(self, held):
        if not held:
            return
        try:
            lost = await self.leases.renew([(run.lease, self.holder) for run in held], self.ttl)
        except errors.HpxdError as e:
            # Stop before the lease can run out: then another node may take it.
            for run in held:
                if self.clock.seconds() - run.renewed_at >= self.ttl * 2 / 3:
                    self._stop(run, f"its lease cannot be renewed ({e.msg})", release=False)
            return
        lost = {name for name, _ in lost}
        for run in held:
            if run.lease in lost:
                self._stop(run, "its lease was lost", release=False)
            else:
                run.renewed_at = self.clock.seconds()

    async def _acquire(self, run):
        try:
            taken = await self.leases.acquire(run.lease, self.holder, self.ttl,
                                              {"node": self.node.name})
        except errors.HpxdError:
            return  # the backend is away: try again next tick
        if taken and not self.running:  # the node stopped while we asked: give it back
            d = self.leases.release(run.lease, self.holder)
            d.addErrback(lambda f: f.trap(errors.HpxdError))
        elif taken and not run.holding:
            run.holding, run.renewed_at = True, self.clock.seconds()
            self._start(run)

    # -- runs ---------------------------------------------------------------------

    def _start(self, run):
        run.restart = None
        process = run.process
        run.ctx = ProcessContext(self.node, process.name, self.clock)
        run.started_at = self.clock.seconds()
        self.log.info("process {name!r} started on node {node!r}", name=process.name,
                      node=self.node.name)
        if process.interval is not None:
            run.looping = task.LoopingCall(process.fn, run.ctx)
            run.looping.clock = self.clock
            run.done = run.looping.start(process.interval, now=True)
        else:
            run.done = defer.maybeDeferred(_run_once, process.fn, run.ctx)
        run.done.addCallbacks(self._returned, self._failed, callbackArgs=(run, run.ctx),
                              errbackArgs=(run, run.ctx))

    def _returned(self, _, run, ctx):
        if ctx is run.ctx and ctx.running:
            ctx.running = False
            self.log.info("process {name!r} returned; it is not started again on this node",
                          name=run.process.name)

    def _failed(self, failure, run, ctx):
        if ctx is not run.ctx or not ctx.running:
            return None  # a run this node stopped: its cancellation, or its last words
        ctx.running = False
        if self.clock.seconds() - run.started_at >= BACKOFF_RESET:
            run.failures = 0
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** run.failures)
        run.failures += 1
        self.log.failure("process {name!r} failed; starting it again in {delay} s", failure,
                         name=run.process.name, delay=delay)
        run.restart = self.clock.callLater(delay, self._start, run)
        return None

    def _stop(self, run, why, release=True):
        """End ``run`` (cancel its restart, its loop, its awaited Deferred);
        fires when it has ended."""
        run.holding = False
        if run.restart is not None and run.restart.active():
            run.restart.cancel()
        run.restart = None
        ctx, done = run.ctx, run.done
        if ctx is not None and ctx.running:
            ctx.running = False
            self.log.info("process {name!r} stopped: {why}", name=run.process.name, why=why)
            if run.looping is not None and run.looping.running:
                run.looping.stop()
            elif done is not None and not done.called:
                done.cancel()
        ended = done if done is not None and not done.called else defer.succeed(None)
        if release:
            ended.addBoth(lambda _: self.leases.release(run.lease, self.holder))
            ended.addErrback(lambda f: f.trap(errors.HpxdError))
        return ended


def _run_once(fn, ctx):
    result = fn(ctx)
    return defer.ensureDeferred(result) if inspect.iscoroutine(result) else result

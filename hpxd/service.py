"""The service tree of one node, built from a validated config.

    HpxdService (MultiService)
      ├── backend services (session purge, Redis connections)
      └── doors (TcpDoor, ...)

It also owns the node's stop sequence used by serverquit / serverrestart:
stop listening, answer the calls in flight, close connections, exit.
"""

import atexit
import gc
import importlib
import os
import sys

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from hpxd import backends
from hpxd.core import control
from hpxd.core.app import Task
from hpxd.core.auth import Authenticator
from hpxd.core.node import Node
from hpxd.core.records import RecordStore, open_pool
from hpxd.doors.tcp import TcpDoor


def load_task(module_name):
    """Import the app module and return its ``task``; ValueError says why not."""
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise ValueError(f"cannot import {module_name!r} ({type(e).__name__}: {e})") from None
    task = getattr(module, "task", None)
    if not isinstance(task, Task):
        raise ValueError(f"module {module_name!r} has no attribute 'task' that is a hpxd.app.Task")
    return task


def build_node(config, task, reactor):
    backend = backends.build(config, reactor)
    auth = Authenticator(config.roles, config.users, config.auth.guest_allowed,
                         config.auth.guest_role, config.auth.failed_login_delay, reactor)
    records = RecordStore(open_pool(config.database_url))
    node = Node(config.server.name, task, auth, backend.sessions, backend.scope, backend.hub,
                records)
    return node, backend


class HpxdService(service.MultiService):
    log = Logger()

    def __init__(self, config, task, reactor=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.node, self.backend = build_node(config, task, reactor)
        self.node.stopper = self.stop_node
        for child in self.backend.services:
            child.setServiceParent(self)
        self.doors = []
        if config.tcp.listen:
            self.doors.append(TcpDoor(self.node, config.tcp, reactor))
        for door in self.doors:
            door.setServiceParent(self)
        self.ready = None
        self._stopping = None

    def startService(self):
        super().startService()
        self.ready = defer.ensureDeferred(self._start())

    async def _start(self):
        try:
            await self.node.records.prepare(self.node.task.items())
            if self.backend.ready is not None:
                await self.backend.ready()
            for door in self.doors:
                await door.listening
        except Exception as e:
            self.log.critical("hpxd cannot start: {error}", error=e)
            exit_process(self.reactor, 1)
            return
        # Everything made so far (modules, config, app) lives as long as the
        # process: keep it out of the cyclic GC's full collections, which
        # would otherwise walk it again and again under load.
        gc.freeze()
        self.log.info("hpxd node {name!r} ready (app {app!r}, backend {backend})",
                      name=self.config.server.name, app=self.config.app.module,
                      backend=self.config.backend.kind)

    def stop_node(self, status):
        if self._stopping is None:
            self._stopping = defer.ensureDeferred(self._stop_node(status))
        return self._stopping

    async def _stop_node(self, status):
        timeout = self.config.server.shutdown_timeout
        for door in self.doors:
            await door.stop_listening()
        await _bounded(self.node.dispatcher.drain(), timeout, self.reactor)
        await _bounded(defer.DeferredList([d.factory.close_all() for d in self.doors]),
                       timeout, self.reactor)
        self.log.info("hpxd node stopped by server command; exit status {status}", status=status)
        exit_process(self.reactor, status)

    def stopService(self):
        """twistd's stop (SIGTERM, Ctrl-C): like serverquit, within shutdown_timeout."""
        if self._stopping is None:  # not already stopping through a server command
            self.node.hub.command(control.QUIT)
        d = defer.maybeDeferred(super().stopService)
        _bounded(d, self.config.server.shutdown_timeout, self.reactor)
        d.addBoth(lambda _: self.node.records.close())
        return d


def _bounded(d, timeout, reactor):
    d.addTimeout(timeout, reactor)
    d.addErrback(lambda f: None)
    return d


def exit_process(reactor, status):
    """Stop the reactor; make twistd exit with ``status`` (it would exit 0)."""
    if status:
        reactor.addSystemEventTrigger("after", "shutdown", atexit.register, _hard_exit, status)
    reactor.callLater(0, reactor.stop)


def _hard_exit(status):
    # Registered last, so it runs first among atexit handlers: flush and go.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)

"""The service tree of one node, built from a validated config.

    HpxdService (MultiService)
      ├── password checks (HashPool: threads of their own)
      ├── backend services (session purge, Redis connections)
      ├── client names (renews the leases of introduced client ids)
      ├── doors (built from config through the registry in hpxd.doors)
      └── processes (ProcessRunner; joins once the node is ready)

It also owns the node's one quit sequence (see ``HpxdService.quit``), used
by serverquit, serverrestart and twistd's own stop.
"""

import atexit
import gc
import os
import signal
import sys

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger

from hpxd import backends, doors
from hpxd import config as configmod
from hpxd.core import control
from hpxd.core.auth import Authenticator
from hpxd.core.clients import ClientNames
from hpxd.core.deferreds import when_done
from hpxd.core.file_store import DatabaseFileStore
from hpxd.core.files import Files
from hpxd.core.node import Node
from hpxd.core.passwords import HashPool
from hpxd.core.processes import ProcessRunner
from hpxd.core.record_locks import RecordLocks
from hpxd.core.records import store_from_config
from hpxd.core.sips import SipStore


def read_config(path):
    """The config file at ``path`` (None: the built-in defaults), every
    check made, its paths absolute; ConfigError if it is not good.
    Blocking (file reads, directory checks, the TLS files of ssl:
    endpoints). The doors' knowledge comes from here, not from config.py:
    ``[web] echo_path`` must avoid the paths the web door serves."""
    config = configmod.load(path, configmod.check_endpoint, web_paths=doors.WEB_RESOURCES)
    config.resolve_paths()
    return config


# What a reload applies besides [auth], [[users]] and [roles.*]; any other
# key that changed is named in the log as waiting for the next start.
RELOADED = {("server", "shutdown_timeout"), ("tcp", "max_message_bytes"),
            ("tcp", "handshake_timeout"), ("tcp", "idle_timeout"),
            ("tcp", "max_queued_bytes")}


def needs_restart(old, new):
    """The keys that differ between two configs but a reload does not apply."""
    changed = []
    for section in configmod.SCHEMA:
        if section == "auth":
            continue
        before, after = vars(getattr(old, section)), vars(getattr(new, section))
        changed += [f"{section}.{key}" for key, value in after.items()
                    if before.get(key) != value and (section, key) not in RELOADED]
    return changed


def _authenticator(config, reactor):
    return Authenticator(config.roles, config.users, config.auth.guest_allowed,
                         config.auth.guest_role, config.auth.failed_login_delay, reactor)


def build_node(config, task, reactor, hash_pool=None):
    backend = backends.build(config, reactor)
    auth = _authenticator(config, reactor)
    records = store_from_config(config, reactor)
    names = ClientNames(backend.leases, backend.hub, config.processes.lease_seconds, reactor)
    node = Node(config.server.name, task, auth, backend.sessions, backend.scope, backend.hub,
                records, backend.is_ready, names, config.sessions.connection_grace_seconds,
                hash_pool)
    # Files live in the records' database, which every node shares.
    node.files = Files(node, DatabaseFileStore(records.database), config.web.max_upload_bytes)
    # Record locks and SIPs live in the backend's leases, which every node shares.
    node.record_locks = RecordLocks(backend.leases, config.forms.record_lock_timeout_seconds,
                                    clock=reactor)
    node.sips = SipStore(backend.leases, backend.sessions, config.sessions.lifespan_seconds)
    node.on_session_end.append(node.sips.session_ended)
    return node, backend


class HpxdService(service.MultiService):
    """One node: the backend's services and the doors, and the node's one
    quit sequence (``quit``), followed by serverquit, serverrestart and
    twistd's own stop (SIGTERM, Ctrl-C) alike."""

    log = Logger()

    def __init__(self, config, task, reactor=None, exit=None, config_path=None,
                 reload_on_sighup=False, data_dir_owner=(None, None)):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.exit = exit or exit_process
        self.config = config
        # The uid and gid twistd runs the node as (-u/-g), for data_dir.
        self.data_dir_owner = data_dir_owner
        self.hash_pool = HashPool(reactor, config.auth.hash_threads)
        self.hash_pool.setServiceParent(self)  # first in, so stopped last
        self.node, self.backend = build_node(config, task, reactor, self.hash_pool)
        self.node.stopper = self.stop_node
        for child in self.backend.services:
            child.setServiceParent(self)
        self.node.client_names.service().setServiceParent(self)
        # Started once the node is ready (see _start), stopped first on a quit.
        self.processes = ProcessRunner(self.node, list(task.processes.values()),
                                       self.backend.leases, config.processes.lease_seconds,
                                       reactor)
        self.doors = doors.build(self.node, config, reactor)
        for door in self.doors:
            door.setServiceParent(self)
        self.config_path = config_path  # absolute; None: the built-in defaults
        self.reload_on_sighup = reload_on_sighup
        self._previous_sighup = None
        self.ready = None
        self._listening = None
        self._quitting = None
        self._exiting = None

    def privilegedStartService(self):
        """Listen before twistd drops privileges (-u/-g), so ports < 1024 work."""
        super().privilegedStartService()
        self._listen()

    def _listen(self):
        if self._listening is None:
            self._listening = defer.gatherResults([door.listen() for door in self.doors],
                                                  consumeErrors=True)
            # Made once the node listens (so a node that cannot start leaves
            # nothing behind), before twistd drops privileges: endpoints
            # listen at once, so this runs within privilegedStartService.
            self._listening.addCallback(lambda _: self._make_data_dir())

    def _make_data_dir(self):
        """``[server] data_dir``, owned by the user twistd runs the node as."""
        path = self.config.server.data_dir
        uid, gid = self.data_dir_owner
        try:
            os.makedirs(path, exist_ok=True)
            if uid is not None and os.geteuid() == 0:
                os.chown(path, uid, gid)
        except OSError as e:
            raise RuntimeError(f"cannot prepare server.data_dir {path!r} ({e.strerror})") from None

    def startService(self):
        super().startService()
        self._listen()  # started without privilegedStartService (tests)
        if self.reload_on_sighup:
            self._previous_sighup = signal.signal(signal.SIGHUP, self._sighup)
        self.ready = defer.ensureDeferred(self._start())

    def _sighup(self, signum, frame):
        # A signal handler runs between two bytecodes of whatever the reactor
        # was doing: hand the reload to the reactor's loop.
        self.reactor.callFromThread(self.reload)

    async def _prepare_database(self):
        records = self.node.records
        records.start()  # its thread pool; stopped by records.close() in _stop
        try:
            await records.prepare(self.node.task.items())
            await self.node.files.prepare()
        except Exception as e:
            hint = ("its directory and file must be writable by the user hpxd runs as"
                    if records.where.startswith("sqlite") else
                    "is the server up, and may this user connect and create tables?")
            raise RuntimeError(f"cannot open the database {records.where} ({e}); "
                               f"{hint}") from None

    async def _start(self):
        for line in configmod.unknown_privilege_items(self.config, self.node.task):
            self.log.warn("config: {line}", line=line)
        try:
            await self._listening  # first: a node that cannot listen makes no database
            await self._prepare_database()
            if self.backend.ready is not None:
                await self.backend.ready()
        except Exception as e:
            if isinstance(e, defer.FirstError):
                e = e.subFailure.value
            self.log.critical("hpxd cannot start: {error}", error=e)
            self.exit(self.reactor, 1)
            return
        if self._quitting is None:
            self.processes.setServiceParent(self)
        # Everything made so far (modules, config, app) lives as long as the
        # process: keep it out of the cyclic GC's full collections, which
        # would otherwise walk it again and again under load.
        gc.freeze()
        listening = [f"{door.name} {getattr(a, 'host', a)}:{getattr(a, 'port', '')}"
                     for door in self.doors for a in door.addresses()]
        self.log.info("hpxd node {name!r} ready (config {config}, app {app!r}, backend "
                      "{backend}, listeners: {listening})", name=self.config.server.name,
                      config=self.config_path or "<built-in defaults>",
                      app=self.config.app.module, backend=self.config.backend.kind,
                      listening=", ".join(listening) or "none")

    def quit(self, command=control.QUIT):
        """Run the quit sequence once; fire when it is done.

        1. every door stops listening;
        2. the calls in flight are answered and their replies written (or
           ``shutdown_timeout`` passes); new calls get 503 meanwhile;
        3. ``command`` is pushed to every client of this node;
        4. every connection is closed (within ``shutdown_timeout``).
        """
        if self._quitting is None:
            self._quitting = defer.ensureDeferred(self._quit(command))
        return when_done(self._quitting)

    async def _quit(self, command):
        timeout = self.config.server.shutdown_timeout
        await _all([door.stop_listening() for door in self.doors])
        # Processes stop first: nothing of theirs may follow the command.
        await _bounded(self._stop_processes(), timeout, self.reactor, "processes still running")
        answered = _all([self.node.dispatcher.drain()] + [door.drain() for door in self.doors])
        await _bounded(answered, timeout, self.reactor, "calls still running")
        self.node.hub.command(command)
        # Giving up cancels close_connections, which drops what is still open.
        closed = _all([door.close_connections(command) for door in self.doors])
        await _bounded(closed, timeout, self.reactor, "connections still open")

    def _stop_processes(self):
        if self.processes.parent is None:
            return defer.succeed(None)
        return defer.maybeDeferred(self.processes.disownServiceParent)

    def stop_node(self, status, command=control.QUIT):
        """serverquit / serverrestart: the quit sequence, then exit with ``status``."""
        if self._exiting is None:
            self._exiting = defer.ensureDeferred(self._stop_node(status, command))
        return when_done(self._exiting)

    async def _stop_node(self, status, command):
        await self.quit(command)
        self.log.info("hpxd node stopped by {command}; exit status {status}",
                      command=command, status=status)
        self.exit(self.reactor, status)

    async def _stop(self):
        await self.quit(control.QUIT)
        try:
            await super().stopService()
        finally:
            await self.node.records.close()

    def stopService(self):
        """twistd's stop (SIGTERM, Ctrl-C): the quit sequence, then the services."""
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None
        return defer.ensureDeferred(self._stop())

    # -- reload (SIGHUP) -------------------------------------------------------

    def reload(self):
        """Read the config file again; apply it if it is valid, else keep the
        old one. Connections, sessions and calls in flight are untouched.
        A Deferred firing with True when the new config was applied."""
        return defer.ensureDeferred(self._reload())

    async def _reload(self):
        where = self.config_path or "<built-in defaults>"
        try:
            new = await threads.deferToThread(read_config, self.config_path)
        except configmod.ConfigError as e:
            self.log.error("reload refused, still running on the old config: {error}", error=e)
            return False
        later = needs_restart(self.config, new)
        self._apply(new)
        self.log.info("reloaded {where}: users, roles, [auth], [tcp] limits and "
                      "shutdown_timeout applied{later}", where=where,
                      later=f"; these take effect at the next start: {', '.join(later)}"
                      if later else "")
        for line in configmod.unknown_privilege_items(new, self.node.task):
            self.log.warn("config: {line}", line=line)
        return True

    def _apply(self, new):
        old = self.config
        old.roles, old.users, old.auth = new.roles, new.users, new.auth
        old.server.shutdown_timeout = new.server.shutdown_timeout
        # The door reads its section's limits from this same object.
        for key, value in vars(new.tcp).items():
            if key != "listen":
                setattr(old.tcp, key, value)
        self.hash_pool.resize(new.auth.hash_threads)
        self.node.reconfigure(_authenticator(new, self.reactor))


def _all(deferreds):
    return defer.DeferredList(deferreds, consumeErrors=True)


def _bounded(d, timeout, reactor, what):
    """``d``, cancelled after ``timeout`` seconds; the give-up is logged."""
    def gave_up(result, timeout):
        HpxdService.log.warn("shutdown: {what} after {timeout} s; going on", what=what,
                             timeout=timeout)

    return d.addTimeout(timeout, reactor, onTimeoutCancel=gave_up)


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

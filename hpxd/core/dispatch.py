"""The one dispatcher every door calls: resolve, authorise, run, map errors.

Doors call ``Dispatcher.call`` (always a Deferred) or, on a hot path,
``Dispatcher.call_now`` (the plain result when the function answered at
once). Either way every call that starts is counted in ``inflight`` and
settled when the function finishes, whether or not the door waits for the
answer, so ``drain()`` always fires.

Every call is also counted in ``metrics`` (hpxd.core.metrics) by door,
function and result code, and one call in ``SAMPLE_EVERY`` is timed: plain
dict and int updates, inlined on the common path.
"""

import inspect
import types

from twisted.internet import defer
from twisted.logger import Logger

from hpxd.core import errors
from hpxd.core.app import arguments
from hpxd.core.context import ItemContext
from hpxd.core.files import File
from hpxd.core.metrics import NO_DOOR, OK, Metrics, clock
from hpxd.core.record_ops import item_of, record_op

# Results of these types are never awaited; checked first because
# inspect.isawaitable is slow for plain values.
PLAIN = frozenset({int, float, str, bool, list, dict, tuple, type(None)})
AWAITABLE = (defer.Deferred, types.CoroutineType)
NO_ARGS = ()


def _awaitable(result):
    return type(result) not in PLAIN and (isinstance(result, AWAITABLE)
                                          or inspect.isawaitable(result))


class Dispatcher:
    log = Logger()

    def __init__(self, node):
        self.node = node
        self.accepting = True
        self.inflight = 0
        self._drained = []
        self.metrics = Metrics()

    def call(self, session, fname, args=NO_ARGS, kwargs=None, environ=None, sink=None):
        """Run ``fname(item, *args, **kwargs)`` for ``session``.

        A Deferred firing with the result or failing with an ``HpxdError``
        (never any other exception). ``environ`` describes the caller (door,
        peer, ...); ``sink(function_name, value)`` receives each value the
        function sends with ``item.send`` (no sink: ``item.send`` fails with
        ``NotStreamable``).
        """
        try:
            result = self.call_now(session, fname, args, kwargs, environ, sink)
        except errors.HpxdError as e:
            return defer.fail(e)
        if isinstance(result, defer.Deferred):
            return result
        return defer.succeed(result)

    def call_now(self, session, fname, args=NO_ARGS, kwargs=None, environ=None, sink=None):
        """``call`` without a Deferred when none is needed: every TCP call's path.

        Returns the function's result when it answered at once and left no
        session data to save; otherwise a Deferred that is already running
        and settles ``inflight`` when the call ends, even if nobody waits on
        it. Raises ``HpxdError`` (never any other exception) when the call is
        refused (unknown function, privilege, arguments, shutting down) or
        failed at once.
        """
        node, metrics = self.node, self.metrics
        try:
            door = environ["door"]
        except (TypeError, KeyError):  # no environ, or one without a door
            door = NO_DOOR
        function = None
        try:
            if not self.accepting:
                raise errors.ShuttingDown()
            function = node.task.resolve(fname)
            item = function.item
            if not node.auth.can(session.user_info, item.privilege_key, function.requires):
                raise errors.PermissionDenied(f"{fname}: your role {session.role!r} lacks "
                                              f"{function.requires!r} on {item.privilege_key!r}")
            if kwargs is None:
                kwargs = {}
            function.check(args, kwargs)
        except errors.HpxdError as e:
            metrics.count_failed(door, function or self._registered(fname), e.code)
            raise
        return self._run(function, session, args, kwargs, environ, sink, door)

    def _run(self, function, session, args, kwargs, environ, sink, door):
        """Run an authorised, checked call (``call_now``'s second half)."""
        metrics = self.metrics
        ctx = ItemContext(self.node, function.item, session, environ, sink, function.full_name)
        # Comparing snapshots costs two JSON dumps: skip them while data is empty.
        before = session.snapshot() if session.data else None
        self.inflight += 1
        metrics.countdown -= 1  # time one call in metrics.sample_every
        started = 0.0
        if not metrics.countdown:
            metrics.countdown = metrics.sample_every
            started = clock()
        try:
            result = function.fn(ctx, *args, **kwargs)
        except Exception as e:
            if before is None and not session.data:
                self._done()
                error = self._mapped(e, function)
                metrics.ended(door, function, error.code, started)
                raise error from None
            return defer.ensureDeferred(self._finish(session, function, None, e, before,
                                                     door, started))
        if before is None and not session.data and (type(result) in PLAIN
                                                     or not _awaitable(result)):
            self.inflight -= 1  # _done(), inline: every plain call ends here
            if self._drained and not self.inflight:
                self._fire_drained()
            try:  # metrics.ended(), inline: plain dicts, no call
                metrics.answered[door][function] += 1
            except KeyError:  # this door's or this function's first answer
                metrics.ended(door, function, OK, 0.0)
            if started:
                metrics.timed(door, started)
            return result
        return defer.ensureDeferred(self._finish(session, function, result, None, before,
                                                 door, started))

    def records(self, session, item, op, kwargs=None, environ=None):
        """A record operation (hpxd.core.record_ops) on ``item`` (an Item,
        its id or its dotted path) for ``session``: authorised (every
        privilege it needs), counted and settled like ``call``. A Deferred."""
        door = (environ or {}).get("door", NO_DOOR)
        operation = None
        try:
            if not self.accepting:
                raise errors.ShuttingDown()
            operation = record_op(self.node, item, op)
            kwargs = {} if kwargs is None else kwargs
            operation.check((), kwargs)
            for privilege in operation.privileges(kwargs):
                self._authorise(session, operation, privilege)
        except errors.HpxdError as e:
            if operation is not None:
                self.metrics.count_failed(door, operation, e.code)
            return defer.fail(e)
        return self._started(operation, session, (), kwargs, environ, door)

    def report(self, session, item, name, kwargs=None, environ=None):
        """Run the report ``name`` of ``item`` (``@item.report``) for
        ``session`` under the report's privilege: a Deferred of its ``File``.
        ``kwargs``: its arguments as a door has them (``arguments``: an
        object is keyword, a list positional)."""
        door = (environ or {}).get("door", NO_DOOR)
        function = None
        try:
            if not self.accepting:
                raise errors.ShuttingDown()
            found = item_of(self.node, item)
            function = found.reports.get(name) if type(name) is str else None
            if function is None:
                raise errors.FunctionNotFound(f"{found.path or found.name!r} has no report "
                                              f"named {name!r}")
            self._authorise(session, function, function.requires)
            args, kwargs = arguments(kwargs)
            function.check(args, kwargs)
        except errors.HpxdError as e:
            if function is not None:
                self.metrics.count_failed(door, function, e.code)
            return defer.fail(e)
        d = self._started(function, session, args, kwargs, environ, door)
        return d.addCallback(_report_file, function)

    def _authorise(self, session, function, privilege):
        key = function.item.privilege_key
        if not self.node.auth.can(session.user_info, key, privilege):
            raise errors.PermissionDenied(f"{function.full_name}: your role {session.role!r} "
                                          f"lacks {privilege!r} on {key!r}")

    def _started(self, function, session, args, kwargs, environ, door):
        """``_run`` (counted there) as a Deferred."""
        try:
            result = self._run(function, session, args, kwargs, environ, None, door)
        except errors.HpxdError as e:
            return defer.fail(e)
        return result if isinstance(result, defer.Deferred) else defer.succeed(result)

    def _registered(self, fname):
        """The app's function named ``fname``, or None: a refused call's
        label is never a name the client made up."""
        try:
            return self.node.task.resolve(fname)
        except errors.HpxdError:
            return None

    def functions(self, session):
        """What ``session`` may call: ``[{name, requires, parameters, doc}]``,
        sorted by name, ``parameters`` as ``[{name, required}]`` (the item
        parameter left out). Consoles and clients list these to the user."""
        auth, listed = self.node.auth, []
        for function in self.node.task.all_functions():
            if auth.can(session.user_info, function.item.privilege_key, function.requires):
                listed.append(function.describe())
        return sorted(listed, key=lambda f: f["name"])

    def _mapped(self, error, function):
        """The error the client sees: an HpxdError as it is, anything else as
        100, its traceback logged (call inside the ``except`` that caught it)."""
        if isinstance(error, errors.HpxdError):
            return error
        self.log.failure("function {fname} failed", fname=function.full_name)
        return errors.UnhandledError()

    async def _finish(self, session, function, result, error, before, door, started):
        """``_settle``, then count the call as it ended."""
        try:
            result = await self._settle(session, function, result, error, before)
        except Exception as e:
            code = e.code if isinstance(e, errors.HpxdError) else errors.UnhandledError.code
            self.metrics.ended(door, function, code, started)
            raise
        self.metrics.ended(door, function, OK, started)
        return result

    async def _settle(self, session, function, result, error, before):
        """Await the function's result, then save the session if it changed."""
        try:
            if error is not None:
                raise error
            if _awaitable(result):
                result = await result
            return result
        except Exception as e:
            raise self._mapped(e, function) from None
        finally:
            try:
                if (session.data or before is not None) and session.snapshot() != before:
                    await self._save(session, function.full_name)
            finally:
                self._done()

    def _done(self):
        self.inflight -= 1
        if not self.inflight and self._drained:
            self._fire_drained()

    def _fire_drained(self):
        waiting, self._drained = self._drained, []
        for d in waiting:
            d.callback(None)

    async def _save(self, session, fname):
        try:
            if session.transient:  # a web request's guest, given data: stored now
                await self.node.sessions.add(session)
                session.transient = False
            else:
                await self.node.sessions.save(session)
        except errors.BadArguments as e:  # the app put something odd in session.data
            self.log.error("{fname} left session data that cannot be stored: {e}",
                           fname=fname, e=e.msg)
            raise errors.UnhandledError() from None

    def drain(self):
        """Stop taking calls; fire when every call in flight has finished.

        Waiting on (or giving up on) this never touches the calls themselves.
        """
        self.accepting = False
        if not self.inflight:
            return defer.succeed(None)
        d = defer.Deferred(lambda d: self._drained.remove(d) if d in self._drained else None)
        self._drained.append(d)
        return d


def _report_file(result, function):
    if not isinstance(result, File):
        Dispatcher.log.error("report {name} returned {kind}, not an hpxd.app.File",
                             name=function.full_name, kind=type(result).__name__)
        raise errors.UnhandledError()
    return result

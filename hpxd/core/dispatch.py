"""The one dispatcher every door calls: resolve, authorise, run, map errors."""

import inspect
import types

from twisted.internet import defer
from twisted.logger import Logger

from hpxd.core import errors
from hpxd.core.context import ItemContext


# Results of these types are never awaited; checked first because
# inspect.isawaitable is slow for plain values.
PLAIN = frozenset({int, float, str, bool, list, dict, tuple, type(None)})
AWAITABLE = (defer.Deferred, types.CoroutineType)


class Later:
    """What ``Dispatcher.start`` returns for a call that must wait: ``rest``
    is the coroutine that finishes it (await it exactly once)."""

    __slots__ = ("rest",)

    def __init__(self, rest):
        self.rest = rest


class Dispatcher:
    log = Logger()

    def __init__(self, node):
        self.node = node
        self.accepting = True
        self.inflight = 0
        self._drained = []

    def call(self, session, fname, kwargs, environ, stream=None):
        """Run ``fname`` for ``session``; a Deferred firing with the result or
        failing with an ``HpxdError`` (never any other exception)."""
        return defer.ensureDeferred(self.run(session, fname, kwargs, environ, stream))

    async def run(self, session, fname, kwargs, environ, stream=None):
        """``call`` as a coroutine, for doors that ``await`` it."""
        result = self.start(session, fname, kwargs, environ, stream)
        if type(result) is Later:
            return await result.rest
        return result

    def start(self, session, fname, kwargs, environ, stream=None):
        """Run ``fname`` as far as it goes without waiting: every call's path.

        Returns the function's result when it answered at once and left no
        session data to save (the common case: no coroutine, no Deferred);
        otherwise a ``Later`` whose coroutine finishes the call. Raises
        ``HpxdError`` (and never any other exception) when the call is
        refused or fails at once.
        """
        if not self.accepting:
            raise errors.ShuttingDown()
        node = self.node
        function = node.task.resolve(fname)
        item = function.item
        if not node.auth.can(session.user_info, item.privilege_key, function.requires):
            raise errors.PermissionDenied(f"{fname}: your role {session.role!r} lacks "
                                          f"{function.requires!r} on {item.privilege_key!r}")
        ctx = ItemContext(node, item, session, environ, stream, function.full_name)
        # Comparing snapshots costs two JSON dumps: skip them while data is empty.
        before = session.snapshot() if session.data else None
        self.inflight += 1
        try:
            result = function.invoke(ctx, kwargs if isinstance(kwargs, dict) else {})
        except Exception as e:
            return Later(self._finish(session, function, None, e, before))
        if before is None and not session.data and (
                type(result) in PLAIN or not (isinstance(result, AWAITABLE)
                                              or inspect.isawaitable(result))):
            self._done()
            return result
        return Later(self._finish(session, function, result, None, before))

    async def _finish(self, session, function, result, error, before):
        """Await the function's result, then save the session if it changed."""
        try:
            if error is not None:
                raise error
            if type(result) not in PLAIN and (isinstance(result, AWAITABLE)
                                              or inspect.isawaitable(result)):
                result = await result
            return result
        except errors.HpxdError:
            raise
        except Exception:
            self.log.failure("function {fname} failed", fname=function.full_name)
            raise errors.UnhandledError() from None
        finally:
            try:
                if (session.data or before is not None) and session.snapshot() != before:
                    await self._save(session, function.full_name)
            finally:
                self._done()

    def _done(self):
        self.inflight -= 1
        if not self.inflight and self._drained:
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)

    async def _save(self, session, fname):
        try:
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

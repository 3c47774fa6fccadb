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
        """``call`` as a coroutine, for doors that ``await`` it: no Deferred
        is made for a call that finishes at once. One coroutine on purpose:
        this is every call's path."""
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
                    await self._save(session, fname)
            finally:
                self.inflight -= 1
                if not self.inflight and self._drained:
                    self._wake_drained()

    def _wake_drained(self):
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

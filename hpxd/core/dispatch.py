"""The one dispatcher every door calls: resolve, authorise, run, map errors."""

import inspect

from twisted.internet import defer
from twisted.logger import Logger

from hpxd.core import errors
from hpxd.core.context import ItemContext


class Dispatcher:
    log = Logger()

    def __init__(self, node):
        self.node = node
        self.accepting = True
        self._inflight = set()

    def call(self, session, fname, kwargs, environ, stream=None):
        """Run ``fname`` for ``session``; a Deferred firing with the result or
        failing with an ``HpxdError`` (never any other exception)."""
        if not self.accepting:
            return defer.fail(errors.ShuttingDown())
        d = defer.ensureDeferred(self._call(session, fname, kwargs, environ, stream))
        # drain() waits on this, not on ``d``: waiting must not change (or,
        # on a timeout, cancel) the result the caller sees.
        finished = defer.Deferred()
        self._inflight.add(finished)
        d.addBoth(self._done, finished)
        return d

    def _done(self, result, finished):
        self._inflight.discard(finished)
        if not finished.called:
            finished.callback(None)
        return result

    async def _call(self, session, fname, kwargs, environ, stream):
        function = self.node.task.resolve(fname)
        item = function.item
        if not self.node.auth.can(session.user_info, self.node.privilege_key(item),
                                  function.requires):
            raise errors.PermissionDenied(
                f"{fname}: your role {session.role!r} lacks {function.requires!r} on "
                f"{self.node.privilege_key(item)!r}")
        ctx = ItemContext(self.node, item, session, environ, stream, function.full_name)
        bound = function.bind(ctx, kwargs if isinstance(kwargs, dict) else {})
        before = session.snapshot()
        try:
            return await self._run(function, bound)
        finally:
            if session.snapshot() != before:
                await self._save(session, fname)

    async def _save(self, session, fname):
        try:
            await self.node.sessions.save(session)
        except errors.BadArguments as e:  # the app put something odd in session.data
            self.log.error("{fname} left session data that cannot be stored: {e}",
                           fname=fname, e=e.msg)
            raise errors.UnhandledError() from None

    async def _run(self, function, bound):
        try:
            result = function.fn(*bound.args, **bound.kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result
        except errors.HpxdError:
            raise
        except Exception:
            self.log.failure("function {fname} failed", fname=function.full_name)
            raise errors.UnhandledError() from None

    def drain(self):
        """Stop taking calls; fire when every call in flight has finished."""
        self.accepting = False
        return defer.DeferredList(list(self._inflight), consumeErrors=True)

    @property
    def inflight(self):
        return len(self._inflight)

"""Small helpers for the core's Deferred-returning seams."""

import functools

from twisted.internet import defer


def deferred(f):
    """Write a seam method as ``async def``, hand callers a Deferred.

    The interfaces promise Deferreds (``.addCallback`` works) on every
    backend; coroutines would only be awaitable.
    """
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return defer.ensureDeferred(f(*args, **kwargs))
    return wrapper


def when_done(d):
    """A new Deferred firing (with None) when ``d`` does, leaving ``d``'s
    result alone for its other waiters: for a stop or close that several
    callers may await."""
    done = defer.Deferred()

    def fire(result):
        done.callback(None)
        return result

    d.addBoth(fire)
    return done

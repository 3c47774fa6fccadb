"""Is this node ready to serve? What a load balancer's check asks, door-neutral.

``readiness(node, clock)`` fires with ``{check: bool}``: ``accepting`` (not
stopping), ``backend`` (the shared backend connected and, for Redis,
subscribed to the hub channel) and ``database`` (answers a trivial query
within ``timeout`` seconds). The node is ready when every check is True.
"""

DATABASE_TIMEOUT = 2.0  # seconds a readiness check waits for the database


async def readiness(node, clock, timeout=DATABASE_TIMEOUT):
    checks = {"accepting": node.dispatcher.accepting, "backend": bool(node.backend_ready())}
    checks["database"] = await _database_answers(node, clock, timeout)
    return checks


async def _database_answers(node, clock, timeout):
    if node.records is None:
        return True
    d = node.records.ping()
    d.addTimeout(timeout, clock)
    try:
        await d
    except Exception:  # down, broken or too slow: not ready either way
        return False
    return True

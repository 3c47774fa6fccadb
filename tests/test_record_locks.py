"""hpxd/core/record_locks.py: QFQ's record locks on ILeases, on BOTH backends
(memory, and a private real Redis), and across two nodes sharing one Redis."""

import pytest
import pytest_twisted
from twisted.internet import task

from hpxd.backends.memory import MemoryLeases
from hpxd.core import errors
from hpxd.core.record_locks import (ADVISORY, CONFLICT, CONFLICT_ALLOW_FORCE, EXCLUSIVE, NONE,
                                    SUCCESS, LockAnswer, RecordLocks)
from tests.support import polled, started_backend, stopped_backend

A = "session-a"
B = "session-b"


@pytest_twisted.async_yield_fixture
async def leases(backend):
    """The ILeases of a started backend of the ``backend`` kind (conftest)."""
    started = await started_backend({"backend": backend})
    yield started.leases
    await stopped_backend(started)


@pytest.fixture
def locks(leases, reactor):
    return RecordLocks(leases, clock=reactor)


async def statuses(*deferreds):
    return [(await d).status for d in deferreds]


@pytest_twisted.ensureDeferred
async def test_exclusive_lock_conflicts_for_another_owner_and_cannot_be_forced(locks):
    assert (await locks.lock("contact", 7, A, EXCLUSIVE, "hash1")).status == SUCCESS
    answer = await locks.lock("contact", 7, B, EXCLUSIVE, "hash1")
    assert answer.status == CONFLICT
    assert "another user is editing this record" in answer.message
    assert A not in answer.message  # never tells a session id
    assert (await locks.force("contact", 7, B, EXCLUSIVE)).status == CONFLICT
    assert await locks.locked_by_other("contact", 7, B) is True
    assert await locks.locked_by_other("contact", 7, A) is False
    # another record, and the same record id of another form, are free
    assert await statuses(locks.lock("contact", 8, B, EXCLUSIVE),
                          locks.lock("company", 7, B, EXCLUSIVE)) == [SUCCESS, SUCCESS]


@pytest_twisted.ensureDeferred
async def test_advisory_lock_offers_force_and_force_takes_it_over(locks):
    assert (await locks.lock("contact", 7, A, ADVISORY)).status == SUCCESS
    assert (await locks.lock("contact", 7, B, ADVISORY)).status == CONFLICT_ALLOW_FORCE
    forced = await locks.force("contact", 7, B, ADVISORY, "hash2")
    assert forced.status == SUCCESS
    assert "took over" in forced.message
    # A lost it: extending or locking again now conflicts for A
    assert await statuses(locks.extend("contact", 7, A, ADVISORY),
                          locks.lock("contact", 7, A, ADVISORY)) == [CONFLICT_ALLOW_FORCE] * 2
    assert (await locks.extend("contact", 7, B, ADVISORY)).status == SUCCESS
    assert await locks.locked_by_other("contact", 7, A) is True


@pytest_twisted.ensureDeferred
async def test_release_frees_the_lock_for_others_but_only_its_owner_releases(locks):
    assert (await locks.lock("contact", "7", A, EXCLUSIVE)).status == SUCCESS
    assert (await locks.release("contact", 7, B, EXCLUSIVE)).status == SUCCESS  # frees nothing
    assert (await locks.lock("contact", 7, B, EXCLUSIVE)).status == CONFLICT  # 7 and "7": one lock
    assert (await locks.release("contact", 7, A, EXCLUSIVE)).status == SUCCESS
    assert (await locks.lock("contact", 7, B, EXCLUSIVE)).status == SUCCESS
    assert await locks.locked_by_other("contact", 7, A) is True


@pytest_twisted.ensureDeferred
async def test_another_tab_of_the_same_session_is_another_owner(locks):
    assert (await locks.lock("contact", 1, A, EXCLUSIVE, tab="tab1")).status == SUCCESS
    assert (await locks.lock("contact", 1, A, EXCLUSIVE, tab="tab1")).status == SUCCESS
    assert (await locks.lock("contact", 1, A, EXCLUSIVE, tab="tab2")).status == CONFLICT
    assert (await locks.lock("contact", 1, A, EXCLUSIVE)).status == CONFLICT


@pytest_twisted.ensureDeferred
async def test_mode_none_locks_nothing(locks):
    assert await statuses(locks.lock("memo", 1, A, NONE), locks.lock("memo", 1, B, NONE),
                          locks.extend("memo", 1, B, NONE), locks.force("memo", 1, B, NONE),
                          locks.release("memo", 1, A, NONE)) == [SUCCESS] * 5
    assert await locks.locked_by_other("memo", 1, A) is False


@pytest_twisted.ensureDeferred
async def test_a_lock_expires_after_its_timeout_unless_extended(backend, leases, reactor):
    """Memory: a fake clock; Redis: a short real timeout, polled."""
    if backend["kind"] == "memory":
        clock = task.Clock()
        locks = RecordLocks(MemoryLeases(clock), timeout=10, clock=clock)
        assert (await locks.lock("contact", 3, A, EXCLUSIVE)).status == SUCCESS
        clock.advance(6)
        assert (await locks.extend("contact", 3, A, EXCLUSIVE)).status == SUCCESS
        clock.advance(6)  # 12 s after the lock, 6 after the extension
        assert (await locks.lock("contact", 3, B, EXCLUSIVE)).status == CONFLICT
        clock.advance(5)
        assert (await locks.lock("contact", 3, B, EXCLUSIVE)).status == SUCCESS
        return
    locks = RecordLocks(leases, timeout=0.3, clock=reactor)
    answer = await locks.lock("contact", 3, A, EXCLUSIVE)
    assert answer.status == SUCCESS and answer.expires > reactor.seconds()
    assert (await locks.lock("contact", 3, B, EXCLUSIVE)).status == CONFLICT
    await polled(lambda: locks.locked_by_other("contact", 3, B), False)
    assert (await locks.lock("contact", 3, B, EXCLUSIVE)).status == SUCCESS


@pytest_twisted.ensureDeferred
async def test_extend_takes_an_expired_lock_again_when_nobody_else_did():
    clock = task.Clock()
    locks = RecordLocks(MemoryLeases(clock), timeout=10, clock=clock)
    assert (await locks.lock("contact", 3, A, EXCLUSIVE)).status == SUCCESS
    clock.advance(11)
    assert (await locks.extend("contact", 3, A, EXCLUSIVE)).status == SUCCESS
    assert (await locks.lock("contact", 3, B, EXCLUSIVE)).status == CONFLICT


def test_the_default_timeout_is_qfqs_900_seconds(leases):
    assert RecordLocks(leases).timeout == 900


@pytest.mark.parametrize("args", [
    ("contact", 1, A, "shared"),  # no such mode
    ("contact", None, A, EXCLUSIVE),  # no record id
    ("contact", True, A, EXCLUSIVE),
    ("", 1, A, EXCLUSIVE),  # no form
    ("contact", 1, "", EXCLUSIVE),  # no owner
    ("contact", 1, "a b", EXCLUSIVE),  # an owner that could read as owner + tab
    ("contact", "x" * 1000, A, EXCLUSIVE),
    ("contact", 1, A, EXCLUSIVE, ["not", "a", "hash"]),
])
@pytest_twisted.ensureDeferred
async def test_bad_arguments_fail_413_and_lock_nothing(locks, args):
    failures = []
    d = locks.lock(*args)
    d.addErrback(failures.append)
    await d
    assert failures and failures[0].check(errors.BadArguments)


def test_the_answer_is_a_qfq_lock_response():
    answer = LockAnswer(CONFLICT, "in use", 123.0)
    assert answer.as_dict() == {"status": "conflict", "message": "in use"}


@pytest_twisted.ensureDeferred
async def test_a_lock_taken_through_one_node_conflicts_through_another(redis_server, reactor):
    raw = {"backend": {"kind": "redis", "redis_url": redis_server.url}}
    node_a, node_b = await started_backend(raw), await started_backend(raw)
    try:
        on_a = RecordLocks(node_a.leases, clock=reactor)
        on_b = RecordLocks(node_b.leases, clock=reactor)
        assert (await on_a.lock("contact", 5, A, EXCLUSIVE)).status == SUCCESS
        assert (await on_b.lock("contact", 5, B, EXCLUSIVE)).status == CONFLICT
        assert (await on_a.lock("company", 5, A, ADVISORY)).status == SUCCESS
        assert (await on_b.lock("company", 5, B, ADVISORY)).status == CONFLICT_ALLOW_FORCE
        assert (await on_b.force("company", 5, B, ADVISORY)).status == SUCCESS
        assert (await on_a.extend("company", 5, A, ADVISORY)).status == CONFLICT_ALLOW_FORCE
        assert (await on_a.release("contact", 5, A, EXCLUSIVE)).status == SUCCESS
        assert (await on_b.lock("contact", 5, B, EXCLUSIVE)).status == SUCCESS
    finally:
        await stopped_backend(node_a)
        await stopped_backend(node_b)

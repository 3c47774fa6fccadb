"""hpxd/core/login.py: guest, login, attach and logout through the cred portal,
on a fake clock and the memory session store."""

import pytest
import pytest_twisted
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from zope.interface.verify import verifyObject

from tests.support import wait_until
from hpxd.backends.memory import MemorySessionStore
from hpxd.core import errors
from hpxd.core.auth import Authenticator, Role, User
from hpxd.core.login import Login, PasswordChecker, SessionRealm
from hpxd.core.passwords import hash_password

PASSWORD = "right-horse-battery"
HASH = hash_password(PASSWORD, log2_n=10)
DELAY = 2.0
ROLES = {"guest": Role("guest"), "user": Role("user"), "admin": Role("admin", admin=True)}
USERS = {"alice": User("alice", HASH, "user"), "root": User("root", HASH, "admin")}
PEER = "10.9.8.7:4321"


def make_login(clock, guest_allowed=True):
    auth = Authenticator(ROLES, USERS, guest_allowed, "guest", DELAY, clock)
    return Login(auth, MemorySessionStore(60, clock=clock))


def outcome(d):
    """Collect a Deferred's result or failure without letting it go unhandled."""
    box = []
    d.addBoth(box.append)
    return box


@pytest.fixture
def logged():
    """Every log event of hpxd.core.login while the test runs."""
    events = []

    def observe(event):
        if event.get("log_namespace") == "hpxd.core.login.Login":
            events.append(event)
    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def text_of(event):
    from twisted.logger import formatEvent
    return formatEvent(event)


def test_the_cred_pieces_provide_their_interfaces():
    assert verifyObject(ICredentialsChecker, PasswordChecker(USERS))
    login = make_login(Clock())
    assert verifyObject(IRealm, SessionRealm(login.auth, login.sessions))


# -- guest -------------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_guest_gets_a_new_session(logged):
    login = make_login(Clock())
    session = yield login.guest(PEER)
    assert session.user_info == {"user_name": None, "role": "guest"}
    assert (yield login.sessions.get(session.id)).id == session.id
    [event] = logged
    assert PEER in text_of(event)


@pytest_twisted.inlineCallbacks
def test_guest_refused_when_guests_are_off(logged):
    login = make_login(Clock(), guest_allowed=False)
    with pytest.raises(errors.AuthRequired) as info:
        yield login.guest(PEER)
    assert info.value.code == 407
    assert len(login.sessions) == 0
    [event] = logged
    assert PEER in text_of(event) and "refused" in text_of(event)


# -- login -------------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_login_success(logged):
    clock = Clock()
    login = make_login(clock)
    session = yield login.login("alice", PASSWORD, PEER)
    assert session.user_info == {"user_name": "alice", "role": "user"}
    assert (yield login.sessions.get(session.id)).user_info == session.user_info
    assert clock.getDelayedCalls() == []  # success is not delayed
    [event] = logged
    line = text_of(event)
    assert "'alice'" in line and PEER in line and PASSWORD not in line
    assert session.id not in line  # a session id is a bearer token: never logged


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("user, password", [("alice", "Tr0ub4dor-guess"), ("mallory", PASSWORD)])
def test_failed_login_waits_on_the_clock_and_logs_one_line(user, password, logged):
    clock = Clock()
    login = make_login(clock)
    result = outcome(login.login(user, password, PEER))
    # The password check runs in a thread; then the failure waits on the clock.
    yield wait_until(lambda: clock.getDelayedCalls() or result)
    assert result == [], "a failed login must not answer before the delay"
    clock.advance(DELAY - 0.01)
    assert result == []
    clock.advance(0.01)
    [failure] = result
    assert failure.check(errors.WrongCredentials)
    assert failure.value.code == 411
    # The same answer for an unknown user as for a wrong password.
    assert failure.value.msg == errors.WrongCredentials().msg
    assert len(login.sessions) == 0
    [event] = logged
    line = text_of(event)
    assert repr(user) in line and PEER in line and password not in line


@pytest_twisted.inlineCallbacks
def test_failed_logins_do_not_block_each_other():
    clock = Clock()
    login = make_login(clock)
    results = [outcome(login.login("alice", "bad%d" % i, PEER)) for i in range(3)]
    yield wait_until(lambda: len(clock.getDelayedCalls()) == 3)
    clock.advance(DELAY)
    assert all(r and r[0].check(errors.WrongCredentials) for r in results)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("user, password", [
    ("", "right"), ("alice", ""), (None, "right"), ("alice", None), (1, 2), (None, None),
])
def test_missing_credentials(user, password, logged):
    clock = Clock()
    with pytest.raises(errors.MissingCredentials) as info:
        yield make_login(clock).login(user, password, PEER)
    assert info.value.code == 412
    assert clock.getDelayedCalls() == []
    [event] = logged
    assert PEER in text_of(event)


# -- attach and logout --------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_attach_finds_a_live_session_and_refuses_others():
    login = make_login(Clock())
    made = yield login.login("root", PASSWORD, PEER)
    attached = yield login.attach(made.id, "elsewhere:1")
    assert (attached.id, attached.user_info) == (made.id, made.user_info)
    for bad in ("no-such-session", "", None, 5):
        with pytest.raises(errors.SessionExpired):
            yield login.attach(bad, PEER)


@pytest_twisted.inlineCallbacks
def test_logout_ends_the_session(logged):
    login = make_login(Clock())
    session = yield login.login("alice", PASSWORD, PEER)
    yield login.logout(session, PEER)
    with pytest.raises(errors.SessionExpired):
        yield login.attach(session.id, PEER)
    assert "'alice'" in text_of(logged[-1]) and PEER in text_of(logged[-1])
